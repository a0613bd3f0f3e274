package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/archive"
)

// Every command that reads an archive refuses one whose clip sections were
// changed after writing (the sha256 in the extension section disagrees).
func TestCommandsRefuseChangedClipSections(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", good, "--storage-ref", "docker.io/library/busybox:1.35"); code != 0 {
		t.Fatal(stderr)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// The reference's tag, "1.35" -> "1.36": still a valid storage info.
	at := strings.Index(string(b[a.Header.StorageInfoPos:]), "1.35")
	if at < 0 {
		t.Fatal("tag not found in the storage info")
	}
	b[a.Header.StorageInfoPos+int64(at)+3] = '6'
	bad := filepath.Join(dir, "bad.clip")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"inspect", bad},
		{"ls", bad},
		{"cat", bad, "/etc/passwd", "--layout", busybox},
		{"verify", bad, "--layout", busybox},
		{"diff", good, bad},
	} {
		code, _, stderr := runCLI(t, args...)
		want := 1
		if args[0] == "diff" {
			want = 2
		}
		if code != want || !strings.Contains(stderr, "corrupt clip archive") || !strings.Contains(stderr, "header, index and storage info") {
			t.Errorf("%s: exit %d, stderr %q; want %d naming the checksum", args[0], code, stderr, want)
		}
	}
}
