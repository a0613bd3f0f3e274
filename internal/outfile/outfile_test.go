package outfile

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ociclip/ociclip/internal/testenv"
)

// write writes content to path with Write.
func write(path, content string) error {
	return Write(path, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

// onlyFiles fails when dir holds anything but the given names (a temporary
// file left behind).
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

// A device node, FIFO or socket is refused with ErrNotRegular and stays
// what it was; a directory fails with EISDIR.
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	// /dev/null's numbers (1, 3); needs root (CAP_MKNOD), as in CI.
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		if testenv.CI() {
			t.Fatalf("mknod (CI runs as root): %v", err)
		}
		t.Logf("mknod: %v; the device case is not tested", err)
		null = ""
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	linkToFifo := filepath.Join(dir, "link-to-fifo")
	if err := os.Symlink("fifo", linkToFifo); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		kind string
		mode fs.FileMode
	}{
		{null, "character device", fs.ModeDevice | fs.ModeCharDevice},
		{fifo, "FIFO", fs.ModeNamedPipe},
		{sock, "socket", fs.ModeSocket},
		{linkToFifo, "FIFO", fs.ModeNamedPipe},
	} {
		if tc.path == "" {
			continue
		}
		err := write(tc.path, "x")
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.kind) {
			t.Errorf("%s: %v, want ErrNotRegular naming a %s", tc.path, err, tc.kind)
		}
		if err := Check(tc.path); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Check(%s) = %v, want ErrNotRegular", tc.path, err)
		}
		fi, err := os.Stat(tc.path)
		if err != nil || fi.Mode().Type() != tc.mode {
			t.Errorf("%s is now %v (%v), want type %v", tc.path, fi.Mode(), err, tc.mode)
		}
	}
	if err := write(dir, "x"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v, want EISDIR", err)
	}
	want := []string{"fifo", "link-to-fifo", "sock"}
	if null != "" {
		want = []string{"fifo", "link-to-fifo", "null", "sock"}
	}
	onlyFiles(t, dir, want...)
}

// A symlink is followed, through a chain and relative targets: its final
// target is replaced in the target's directory and the links stay links.
// A dangling symlink's target is created. A loop is an error.
func TestSymlinkFollowed(t *testing.T) {
	root := t.TempDir()
	real, links := filepath.Join(root, "real"), filepath.Join(root, "links")
	for _, d := range []string{real, links} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(real, "a.clip")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// links/second -> links/first -> ../real/a.clip
	if err := os.Symlink("../real/a.clip", filepath.Join(links, "first")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(links, "first"), filepath.Join(links, "second")); err != nil {
		t.Fatal(err)
	}
	if err := write(filepath.Join(links, "second"), "new"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "new" {
		t.Errorf("target holds %q (%v), want new", b, err)
	}
	for _, l := range []string{"first", "second"} {
		if fi, err := os.Lstat(filepath.Join(links, l)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink: %v %v", l, fi, err)
		}
	}
	onlyFiles(t, real, "a.clip")
	onlyFiles(t, links, "first", "second")

	dangling := filepath.Join(links, "dangling")
	if err := os.Symlink("../real/b.clip", dangling); err != nil {
		t.Fatal(err)
	}
	if err := write(dangling, "b"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(real, "b.clip")); err != nil || string(b) != "b" {
		t.Errorf("dangling symlink's target holds %q (%v)", b, err)
	}

	loop := filepath.Join(links, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	if err := write(loop, "x"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("symlink loop: %v, want ELOOP", err)
	}
}

// A new file gets 0666 less the umask; a replaced file keeps its mode and
// owner; a failed write leaves the old file and no temporary file.
func TestModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	// The umask is process-wide: this test does not run in parallel.
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	fresh := filepath.Join(dir, "fresh")
	if err := write(fresh, "x"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("new file with umask 027: mode %v (%v), want 0640", fi.Mode(), err)
	}

	private := filepath.Join(dir, "private")
	if err := os.WriteFile(private, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o600|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(private, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	if err := write(private, "new"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(private)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600|fs.ModeSetgid {
		t.Errorf("replaced file: mode %v, want g+s 0600", fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if root && (st.Uid != 1234 || st.Gid != 5678) {
		t.Errorf("replaced file: owner %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	if !root {
		t.Log("not root: the owner case is not tested")
	}

	errWrite := errors.New("encoding failed")
	err = Write(private, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return errWrite
	})
	if !errors.Is(err, errWrite) {
		t.Errorf("failing write: %v", err)
	}
	if b, _ := os.ReadFile(private); string(b) != "new" {
		t.Errorf("failed write changed the file: %q", b)
	}
	onlyFiles(t, dir, "fresh", "private")

	// A bare relative name: written in the working directory.
	t.Chdir(dir)
	if err := write("bare", "b"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bare", "rel-link"); err != nil {
		t.Fatal(err)
	}
	if err := write("rel-link", "c"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bare")); err != nil || string(b) != "c" {
		t.Errorf("bare name: %q %v", b, err)
	}
	onlyFiles(t, dir, "bare", "fresh", "private", "rel-link")

	if err := write(filepath.Join(dir, "missing", "x"), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want ErrNotExist", err)
	}
}
