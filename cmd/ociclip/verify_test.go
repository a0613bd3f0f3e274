package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// verify on a layout whose layer blob was damaged after indexing says what
// index says (digest or size mismatch, with the blob's path), names the
// layer as everywhere else, still checks the other layers and ends with a
// summary. It printed only "archive/tar: invalid tar header" (or, for a
// truncated blob, "no file at ... in the replay") and no summary.
func TestVerifyDamagedLayer(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bb.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out); code != 0 {
		t.Fatal(stderr)
	}
	const (
		big   = "bdbac3efa91a" // layer 1
		small = "42906f85684d" // layer 3
	)
	for _, tc := range []struct {
		name, layer, want string
		damage            func([]byte) []byte
	}{
		{"flipped byte", "layer 1/3 sha256:" + big, "digest mismatch", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }},
		{"truncated", "layer 3/3 sha256:" + small, "size mismatch", func(b []byte) []byte { return b[:len(b)/2] }},
	} {
		layout := filepath.Join(t.TempDir(), "layout")
		if err := os.CopyFS(layout, os.DirFS(busybox)); err != nil {
			t.Fatal(err)
		}
		blobs, _ := filepath.Glob(filepath.Join(layout, "blobs", "sha256", tc.layer[len(tc.layer)-12:]+"*"))
		if len(blobs) != 1 {
			t.Fatalf("%s: blob of %s not found", tc.name, tc.layer)
		}
		b, err := os.ReadFile(blobs[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blobs[0], tc.damage(b), 0o644); err != nil {
			t.Fatal(err)
		}
		// What index says of the same blob.
		code, _, ierr := runCLI(t, "index", "-q", "oci:"+layout+":1.35", "-o", filepath.Join(t.TempDir(), "x.clip"))
		if code != 1 || !strings.Contains(ierr, tc.want) || !strings.Contains(ierr, blobs[0]) {
			t.Fatalf("%s: index: exit %d, %q", tc.name, code, ierr)
		}
		code, stdout, stderr := runCLI(t, "verify", out, "--layout", layout)
		damaged := regexp.MustCompile(`(?m)^DAMAGED ` + regexp.QuoteMeta(tc.layer) + `[0-9a-f]*: .*` + tc.want + `.*` + regexp.QuoteMeta(blobs[0]))
		summary := regexp.MustCompile(`(?m)^verified [1-9]\d* files, .* read through the index, 0 mismatches, 1 damaged layer \([1-9]\d* files? not checked\)\n\z`)
		if code != 1 || !damaged.MatchString(stdout) || !summary.MatchString(stdout) || strings.Contains(stdout, "MISMATCH") {
			t.Errorf("%s: verify: exit %d, stdout:\n%s\nstderr: %s", tc.name, code, stdout, stderr)
		}
		if !strings.Contains(stderr, "1 of 3 layers damaged, first: "+tc.layer) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: verify stderr %q", tc.name, stderr)
		}
	}
}
