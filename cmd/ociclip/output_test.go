package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ociclip/ociclip/internal/testenv"
)

// "ociclip index ... -o DEVICE" (a natural "just validate" run with
// /dev/null) refuses the device node and leaves it a device node; a FIFO
// too. Tested on a node made with mknod in a temporary directory.
func TestIndexOutputDeviceRefused(t *testing.T) {
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		testenv.Missing(t, "mknod needs root (CI runs as root): %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{{null, "character device"}, {fifo, "FIFO"}} {
		code, stdout, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", tc.path)
		if code != 1 || !strings.Contains(stderr, tc.path+" is a "+tc.kind) || !strings.Contains(stderr, "-o - writes to stdout") || stdout != "" {
			t.Errorf("-o %s: exit %d, stdout %q, stderr %q", tc.kind, code, stdout, stderr)
		}
	}
	if fi, err := os.Stat(null); err != nil || fi.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Errorf("the device node is now %v (%v)", fi.Mode(), err)
	}
	if fi, err := os.Stat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the FIFO is now %v (%v)", fi.Mode(), err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("left %v", es)
	}
}

// "-o -" and "-o /dev/stdout" stream the archive to stdout (the same bytes
// as a file) and move the summary to stderr; no file named "-" appears.
func TestIndexOutputStdout(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bb.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", file); code != 0 {
		t.Fatal(stderr)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, o := range []string{"-", "/dev/stdout"} {
		code, stdout, stderr := runCLI(t, "index", "--progress", "none", "oci:"+filepath.Join(wd(t), busybox)+":1.35", "-o", o)
		if code != 0 || !bytes.Equal([]byte(stdout), want) {
			t.Errorf("-o %s: exit %d, %d bytes on stdout, want the %d bytes of the file; stderr %s", o, code, len(stdout), len(want), stderr)
		}
		if !strings.Contains(stderr, "wrote stdout: 3 layers") {
			t.Errorf("-o %s: summary not on stderr: %q", o, stderr)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "-")); err == nil {
		t.Error("a file named - was written")
	}
}

// wd is the test's starting directory (busybox is relative to it).
var startDir, _ = os.Getwd()

func wd(t *testing.T) string {
	t.Helper()
	if startDir == "" {
		t.Fatal("no working directory")
	}
	return startDir
}

// "-o LINK" replaces the symlink's target, in the target's directory, and
// keeps the link; a replaced file keeps its mode; a new one gets 0666 less
// the umask.
func TestIndexOutputSymlinkAndMode(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	target := filepath.Join(other, "real.clip")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.clip")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", link); code != 0 {
		t.Fatal(stderr)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Size() < 1000 || fi.Mode().Perm() != 0o600 {
		t.Errorf("target: %v %v, want the archive with mode 0600", fi, err)
	}
	if code, _, stderr := runCLI(t, "inspect", link); code != 0 {
		t.Errorf("inspect through the link: %s", stderr)
	}
	// The umask is process-wide: this test does not run in parallel.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	fresh := filepath.Join(dir, "fresh.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", fresh); code != 0 {
		t.Fatal(stderr)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new archive with umask 077: %v %v, want 0600", fi.Mode(), err)
	}
	syscall.Umask(0o002)
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", filepath.Join(dir, "group.clip")); code != 0 {
		t.Fatal(stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "group.clip")); err != nil || fi.Mode().Perm() != 0o664 {
		t.Errorf("new archive with umask 002: %v %v, want 0664", fi.Mode(), err)
	}
}
