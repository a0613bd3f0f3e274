package clipstorage_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/internal/fusetest"
	"github.com/ociclip/ociclip/internal/testenv"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/spans"
)

// requireFUSE skips (fails with CI=true) when this machine cannot mount.
func requireFUSE(t *testing.T) {
	t.Helper()
	if err := clipstorage.CheckFUSE(); err != nil {
		testenv.Missing(t, "%v", err)
	}
}

// testImage is a small generated image of three layers: a gzip layer of
// about 3 MiB (many spans at a 256 KiB span), a layer of several gzip
// members and an uncompressed layer, with directories, symlinks, a hard
// link and a whiteout. (umoci, the reference, does not read zstd layers;
// the root package's Reader tests cover them.)
type testImage struct {
	dir   string // OCI layout, ref "1.0"
	gzipD string // digest of the gzip layer
	files []string
}

// body returns n bytes of compressible pseudo-random text.
func body(r *rand.Rand, n int) []byte {
	words := []string{"alpha ", "beta ", "gamma ", "delta\n", "import json\n", "def f(x):\n", "    return x\n", "0123456789"}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		if r.IntN(8) == 0 {
			b = append(b, byte(r.IntN(256)))
			continue
		}
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:n]
}

func makeImage(t *testing.T) testImage {
	t.Helper()
	r := rand.New(rand.NewPCG(12, 34))
	var l1 []testimage.Entry
	l1 = append(l1, testimage.Entry{Name: "usr/", Type: tar.TypeDir}, testimage.Entry{Name: "usr/lib/", Type: tar.TypeDir})
	var files []string
	for i := 0; i < 60; i++ {
		name := fmt.Sprintf("usr/lib/f%02d", i)
		n := 200 + r.IntN(100<<10)
		if i%15 == 7 {
			n = 400 << 10 // a few files across several spans
		}
		l1 = append(l1, testimage.Entry{Name: name, Body: body(r, n), Mode: 0o644})
		if i != 59 { // whited out by the second layer
			files = append(files, "/"+name)
		}
	}
	l1 = append(l1,
		testimage.Entry{Name: "usr/lib/link", Type: tar.TypeSymlink, Linkname: "f01"},
		testimage.Entry{Name: "usr/lib/hard", Type: tar.TypeLink, Linkname: "usr/lib/f02"},
		testimage.Entry{Name: "usr/lib/empty", Body: nil},
	)
	var l2 []testimage.Entry
	l2 = append(l2, testimage.Entry{Name: "etc/", Type: tar.TypeDir})
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("etc/z%d", i)
		l2 = append(l2, testimage.Entry{Name: name, Body: body(r, 1000+r.IntN(60<<10)), Mode: 0o600, Uid: 1000, Gid: 1000})
		files = append(files, "/"+name)
	}
	l2 = append(l2, testimage.Entry{Name: "usr/lib/.wh.f59"})
	l3 := []testimage.Entry{{Name: "bin/", Type: tar.TypeDir}, {Name: "bin/sh", Body: body(r, 300<<10), Mode: 0o755}}
	files = append(files, "/bin/sh")
	dir := filepath.Join(t.TempDir(), "img")
	lay, err := testimage.Write(dir, testimage.Ref{Name: "1.0", Image: &testimage.Image{Layers: []testimage.Layer{
		{Entries: l1, Compression: testimage.Gzip},
		{Entries: l2, Compression: testimage.GzipMulti},
		{Entries: l3, Compression: testimage.None},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	img := lay.Images["1.0"]
	return testImage{dir: dir, gzipD: img.LayerDigests[0].String(), files: files}
}

// index writes ociclip's archive of the image (span 256 KiB; spanBytes < 0:
// no extension, as clip's own archives).
func index(t *testing.T, img testImage, storageRef string, spanBytes int64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "img.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: img.dir, LayoutRef: "1.0", StorageImageRef: storageRef, OutputPath: out, SpanBytes: spanBytes,
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// logBuf collects the engine's log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) Logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// mount mounts s in a temporary directory and unmounts it in t.Cleanup,
// checking that the unmount is clean.
func mount(t *testing.T, s *clipstorage.Storage) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := clipstorage.MountAt(s, mnt)
	if err != nil {
		t.Fatalf("MountAt: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(10 * time.Second); err != nil {
			t.Errorf("Unmount: %v", err)
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
		if fusetest.IsMounted(mnt) {
			t.Errorf("%s is still mounted", mnt)
		}
	})
	fusetest.DisablePoll(t, mnt)
	return mnt
}

// entry is what the comparison looks at for one path.
type entry struct {
	Type, Target, SHA256 string
	Perm                 uint32
	Size                 int64
	Uid, Gid             uint32
}

// walk lstat()s every path under root and hashes every regular file (a
// read error is recorded in place of the hash).
func walk(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		key := "/" + filepath.ToSlash(rel)
		if rel == "." {
			key = "/"
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{Perm: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			e.Type = "dir"
		case syscall.S_IFREG:
			e.Type, e.Size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				e.SHA256 = "read error: " + err.Error()
			} else {
				sum := sha256.Sum256(b)
				e.SHA256 = hex.EncodeToString(sum[:])
			}
		case syscall.S_IFLNK:
			e.Type, e.Size = "symlink", st.Size
			e.Target, _ = os.Readlink(p)
		default:
			e.Type = "other"
		}
		out[key] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// umociTree unpacks the image with `umoci raw unpack` and walks it; it
// returns the tree and the directory it unpacked into.
func umociTree(t *testing.T, dir string) (map[string]entry, string) {
	t.Helper()
	umoci := testenv.LookPath(t, "umoci")
	dest := filepath.Join(t.TempDir(), "rootfs")
	args := []string{"raw", "unpack"}
	if os.Geteuid() != 0 {
		args = append(args, "--rootless")
	}
	args = append(args, "--image", dir+":1.0", dest)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, umoci, args...).CombinedOutput(); err != nil {
		t.Fatalf("umoci %v: %v\n%s", args, err, out)
	}
	return walk(t, dest), dest
}

// compare reports every path that differs (directory sizes aside; owners
// only when root unpacked the reference).
func compare(t *testing.T, got, want map[string]entry) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	bad := 0
	for _, p := range paths {
		g, w := got[p], want[p]
		if g.Type == "dir" && w.Type == "dir" {
			g.Size, w.Size = 0, 0
		}
		if g.Type == "symlink" {
			g.Perm, w.Perm = 0, 0
		}
		if os.Geteuid() != 0 {
			g.Uid, g.Gid, w.Uid, w.Gid = 0, 0, 0, 0
		}
		if g != w {
			bad++
			if bad <= 10 {
				t.Errorf("%s: mount %+v, umoci %+v", p, g, w)
			}
		}
	}
	if len(want) < 10 {
		t.Errorf("the reference has only %d paths", len(want))
	}
}

// engineOpts are the span options of the tests: a small cache, so that
// eviction happens, and the log in lb.
func engineOpts(lb *logBuf) clipstorage.Options {
	return clipstorage.Options{Spans: spans.Options{CacheSize: 1 << 20, Logf: lb.Logf}, ReadTimeout: time.Minute}
}

// sha256Hex is the hex sha256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// anonymous is a keychain that never reads the machine's docker config.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }
