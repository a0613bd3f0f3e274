package main

import (
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/ociclip/ociclip/internal/testenv"
)

// goListDeps returns the packages the CLI links when built with the tags
// given (none: the default build), whatever GOFLAGS says.
func goListDeps(t *testing.T, tags string) map[string]bool {
	t.Helper()
	goCmd := testenv.LookPath(t, "go")
	out, err := exec.Command(goCmd, "list", "-tags="+tags, "-deps", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -tags=%s -deps: %v\n%s", tags, err, ee.Stderr)
		}
		t.Fatalf("go list -tags=%s -deps: %v", tags, err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	return deps
}

// The default build links no GCS driver: gocloud's gcsblob brings
// cloud.google.com/go/storage, gRPC's xDS stack (envoy's protos) and
// Cloud Monitoring's, whose package initialisation took 15-17 MiB of every
// run's resident memory and 31 MB of the binary (README, Performance).
// gs:// is opt-in with -tags ociclip_gcs, which must keep linking it.
func TestDefaultBuildDeps(t *testing.T) {
	deps := goListDeps(t, "")
	for _, p := range []string{"gocloud.dev/blob/s3blob", "gocloud.dev/blob/azureblob", "gocloud.dev/blob/fileblob"} {
		if !deps[p] {
			t.Errorf("default build lacks %s", p)
		}
	}
	heavy := []string{
		"gocloud.dev/blob/gcsblob",
		"cloud.google.com/go/storage",
		"cloud.google.com/go/monitoring/",
		"google.golang.org/grpc/xds",
		"github.com/envoyproxy/",
		"github.com/GoogleCloudPlatform/opentelemetry-operations-go/",
		"github.com/ociclip/ociclip/layercache/clouddrivers", // links gcsblob
	}
	for _, h := range heavy {
		var linked []string
		for p := range deps {
			if p == h || strings.HasPrefix(p, strings.TrimSuffix(h, "/")+"/") {
				linked = append(linked, p)
			}
		}
		if len(linked) > 0 {
			sort.Strings(linked)
			t.Errorf("default build links %s (%d package(s) under %s): they belong behind -tags ociclip_gcs", linked[0], len(linked), h)
		}
	}
	if deps := goListDeps(t, "ociclip_gcs"); !deps["gocloud.dev/blob/gcsblob"] || !deps["gocloud.dev/blob/s3blob"] {
		t.Error("-tags ociclip_gcs does not link gcsblob and s3blob")
	}
}

// ociclip version lists the --cache schemes of this build; a gs:// URL in
// a build without the driver says how to get it instead of gocloud's
// "no driver registered".
func TestCacheSchemes(t *testing.T) {
	schemes := strings.Join(cacheSchemes(), " ")
	for _, s := range []string{"azblob://", "file://", "s3://"} {
		if !strings.Contains(schemes, s) {
			t.Errorf("cache schemes %q lack %s", schemes, s)
		}
	}
	if code, stdout, _ := runCLI(t, "version"); code != 0 || !strings.Contains(stdout, "--cache URLs: "+schemes+"\n") {
		t.Errorf("version: %d\n%s", code, stdout)
	}
	if blob.DefaultURLMux().ValidBucketScheme("gs") { // built with -tags ociclip_gcs
		if !strings.Contains(schemes, "gs://") {
			t.Errorf("cache schemes %q lack gs://", schemes)
		}
		return
	}
	out := filepath.Join(t.TempDir(), "x.clip")
	for _, u := range []string{"gs://bucket/prefix?x=1", "GS://bucket"} {
		code, _, stderr := runCLI(t, "index", "-q", "../../testdata/busybox", "-o", out, "--cache", u)
		if code != 1 || !strings.Contains(stderr, "without the gs:// driver") || !strings.Contains(stderr, "-tags ociclip_gcs") || strings.Contains(stderr, "bucket") {
			t.Errorf("--cache %s: exit %d, stderr %q", u, code, stderr)
		}
	}
}
