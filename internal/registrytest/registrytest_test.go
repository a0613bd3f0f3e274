package registrytest_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ociclip/ociclip/internal/registrytest"
)

// TestPushLayoutKeepsDigests pushes every committed fixture layout and checks
// that the registry serves the same manifest digest and the same layer blobs.
func TestPushLayoutKeepsDigests(t *testing.T) {
	reg := registrytest.Start(t)
	if !strings.HasPrefix(reg.Host(), "127.0.0.1:") {
		t.Fatalf("host %q is not loopback", reg.Host())
	}
	for _, fixture := range []string{"busybox", "busybox-zstd", "busybox-plain", "umoci-insert"} {
		t.Run(fixture, func(t *testing.T) {
			dir := filepath.Join("..", "..", "testdata", fixture)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("fixture %s missing: %v", dir, err)
			}
			full := reg.PushLayout(t, dir, "1.35", "test/"+fixture+":1.35")
			if want := reg.Host() + "/test/" + fixture + ":1.35"; full != want {
				t.Fatalf("ref %q, want %q", full, want)
			}
			ii, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			im, err := ii.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			wantDigest := im.Manifests[0].Digest

			ref, err := name.ParseReference(full)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
			if err != nil {
				t.Fatal(err)
			}
			got, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got != wantDigest {
				t.Fatalf("manifest digest %s in registry, %s in layout", got, wantDigest)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				d, _ := l.Digest()
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm, d.Hex))
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != string(want) {
					t.Fatalf("layer %s differs between registry and layout", d)
				}
				if reg.BlobGets(d.String()) == 0 {
					t.Fatalf("no GET for blob %s recorded", d)
				}
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	reg := registrytest.Start(t)
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }()
		reg.PushLayout(ft, filepath.Join("..", "..", "testdata", "busybox"), "no-such-tag", "test/x:1")
	}()
	if !ft.failed {
		t.Fatal("pushing an unknown layout ref did not fail")
	}
}

// fatalRecorder turns Fatalf into a recorded failure plus a panic, so a test
// can check that a helper fails.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
