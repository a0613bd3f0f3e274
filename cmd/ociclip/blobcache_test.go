package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociclip/ociclip/internal/s3test"
	"github.com/ociclip/ociclip/internal/testimage"
)

// sharedBaseLayers returns a base layer of 64 files of 16 KiB and two
// different small top layers.
func sharedBaseLayers() (base, top1, top2 testimage.Layer) {
	rng := rand.New(rand.NewPCG(13, 13))
	layer := func(prefix string, files, size int) testimage.Layer {
		var l testimage.Layer
		for i := range files {
			body := make([]byte, size)
			for j := range body {
				body[j] = "abcdefgh\n"[rng.IntN(9)]
			}
			l.Entries = append(l.Entries, testimage.Entry{Name: fmt.Sprintf("%s/f%03d", prefix, i), Body: body, ModTime: time.Unix(1700000000, 0)})
		}
		return l
	}
	return layer("usr/lib", 64, 16<<10), layer("app", 3, 512), layer("app", 4, 512)
}

// Two ociclip processes, each with its own client of one S3 bucket (gofakes3
// on 127.0.0.1) and its own copy of its image, as two workers of a fleet:
// the second indexes an image that shares the first one's base layer
// without reading that layer's blob (it is deleted from its layout), and
// writes the archive a run without a cache writes.
func TestCacheURLTwoWorkersSharedBase(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	base, top1, top2 := sharedBaseLayers()
	dirA, dirB := t.TempDir(), t.TempDir()
	if _, err := testimage.Write(dirA, testimage.Ref{Name: "one", Image: &testimage.Image{Layers: []testimage.Layer{base, top1}}}); err != nil {
		t.Fatal(err)
	}
	lb, err := testimage.Write(dirB, testimage.Ref{Name: "two", Image: &testimage.Image{Layers: []testimage.Layer{base, top2}}})
	if err != nil {
		t.Fatal(err)
	}
	wantB := filepath.Join(t.TempDir(), "want.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+dirB+":two", "-o", wantB); code != 0 {
		t.Fatal(stderr)
	}
	worker := func(src, out string) (indexSummary, string) {
		t.Helper()
		s, stderr, err := indexProcess(exe, s3test.Env(), "--progress", "lines", src, "-o", out, "--cache", srv.URL())
		if err != nil {
			t.Fatalf("ociclip index %s: %v\n%s", src, err, stderr)
		}
		return s, stderr
	}
	a, _ := worker("oci:"+dirA+":one", filepath.Join(t.TempDir(), "a.clip"))
	if a.CachedLayers != 0 || srv.Count("PUT", "/"+s3test.Bucket+"/sha256-") != 2 {
		t.Fatalf("first worker: %d cached layers; requests %v", a.CachedLayers, srv.Requests())
	}
	baseDigest := lb.Images["two"].Manifest.Layers[0].Digest
	if err := os.Remove(testimage.BlobPath(dirB, baseDigest)); err != nil {
		t.Fatal(err)
	}
	gets := srv.Count("GET", "/"+s3test.Bucket+"/")
	outB := filepath.Join(t.TempDir(), "b.clip")
	b, progress := worker("oci:"+dirB+":two", outB)
	if b.CachedLayers != 1 || len(b.Warnings) != 1 { // the one warning: no --storage-ref
		t.Errorf("second worker: %d cached layers, warnings %q", b.CachedLayers, b.Warnings)
	}
	// Blob reads: one layer indexed ("done"), the base layer "cached".
	if strings.Count(progress, ": done,") != 1 || strings.Count(progress, ": cached,") != 1 ||
		!strings.Contains(progress, "layer 1/2 "+shortDigest(baseDigest.String())+": cached") {
		t.Errorf("second worker's progress:\n%s", progress)
	}
	if n := srv.Count("GET", "/"+s3test.Bucket+"/") - gets; n != 2 {
		t.Errorf("second worker made %d GETs, want 2 (base hit, top miss)", n)
	}
	got, _ := os.ReadFile(outB)
	want, _ := os.ReadFile(wantB)
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("second worker's archive differs from a run without a cache")
	}
}

// --cache and --cache-dir exclude each other.
func TestCacheFlagsExclusive(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	code, _, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", out, "--cache", "file:///tmp", "--cache-dir", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// A cache that is down: one warning on stderr, exit 0, the archive of a run
// without cache.
func TestCacheURLDown(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	url := srv.URL()
	srv.Close()
	dir := t.TempDir()
	want := filepath.Join(dir, "want.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", want); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(dir, "x.clip")
	code, _, stderr := runCLI(t, "index", "--progress", "none", "oci:"+busybox+":1.35", "-o", out, "--cache", url, "--cache-timeout", "2s")
	if code != 0 || strings.Count(stderr, "cache unavailable") != 1 {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	a, _ := os.ReadFile(want)
	b, _ := os.ReadFile(out)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the archive differs from a run without cache")
	}
}
