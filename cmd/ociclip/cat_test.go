package main

import (
	"os"
	"path/filepath"
	"testing"
)

// cat -o FILE writes the file atomically: the same bytes as on stdout, and
// on a failure (a damaged blob) FILE keeps its old content and no temporary
// file is left. On stdout a file up to 4 MiB is written whole or not at
// all (busybox, 1.9 MiB: a 1 MiB prefix was written before the failure).
func TestCatOutputAtomic(t *testing.T) {
	dir := t.TempDir()
	archivePath := filepath.Join(t.TempDir(), "bb.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", archivePath); code != 0 {
		t.Fatal(stderr)
	}
	code, want, stderr := runCLI(t, "cat", archivePath, "/bin/busybox", "--layout", busybox)
	if code != 0 || len(want) < 1<<20 {
		t.Fatalf("cat to stdout: exit %d, %d bytes, %s", code, len(want), stderr)
	}
	dest := filepath.Join(dir, "busybox")
	if code, stdout, stderr := runCLI(t, "cat", archivePath, "/bin/busybox", "--layout", busybox, "-o", dest); code != 0 || stdout != "" {
		t.Fatalf("cat -o: exit %d, stdout %d bytes, %s", code, len(stdout), stderr)
	}
	if got, err := os.ReadFile(dest); err != nil || string(got) != want {
		t.Fatalf("cat -o wrote %d bytes (%v), want the %d of stdout", len(got), err, len(want))
	}

	// The layer holding /bin/busybox, damaged after indexing.
	layout := filepath.Join(t.TempDir(), "layout")
	if err := os.CopyFS(layout, os.DirFS(busybox)); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(layout, "blobs", "sha256", "bdbac3efa91a4ded01585ccc974d20a380ffa79b983b3175e7963f0c92e869b4")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+64; i++ {
		b[i] ^= 0x55
	}
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "cat", archivePath, "/bin/busybox", "--layout", layout, "-o", dest); code != 1 || stdout != "" || stderr == "" {
		t.Errorf("cat -o from a damaged blob: exit %d, stdout %d bytes, stderr %q", code, len(stdout), stderr)
	}
	if got, _ := os.ReadFile(dest); string(got) != "old" {
		t.Errorf("failed cat -o changed the file (%d bytes)", len(got))
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("left %v", es)
	}
	if code, stdout, _ := runCLI(t, "cat", archivePath, "/bin/busybox", "--layout", layout); code != 1 || stdout != "" {
		t.Errorf("cat from a damaged blob to stdout: exit %d, %d bytes written", code, len(stdout))
	}
}
