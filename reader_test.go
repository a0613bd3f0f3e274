package ociclip_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
)

// textish returns n bytes of compressible but non-repeating text.
func textish(rng *rand.Rand, n int) []byte {
	words := []string{"layer", "offset", "window", "inflate", "checkpoint", "overlay", "whiteout", "gzip", "zstd", "tar", "\n", "clip", "mount", "0x1f8b"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.Intn(len(words))])
		b.WriteByte(' ')
		fmt.Fprintf(&b, "%d ", rng.Intn(100000))
	}
	return b.Bytes()[:n]
}

// randomAccessImage writes a layout with one layer per compression, each
// holding several files of a few hundred KiB, and returns its dir.
func randomAccessImage(t *testing.T) (string, *testimage.Layout) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	var layers []testimage.Layer
	for i, c := range []testimage.Compression{testimage.GzipFlush, testimage.GzipMulti, testimage.Gzip, testimage.GzipStdlib, testimage.ZstdMulti, testimage.ZstdSkippable, testimage.None} {
		var es []testimage.Entry
		for j := 0; j < 6; j++ {
			es = append(es, testimage.Entry{Name: fmt.Sprintf("l%d/f%d", i, j), Body: textish(rng, 100_000+rng.Intn(300_000))})
		}
		es = append(es, testimage.Entry{Name: fmt.Sprintf("l%d/link", i), Type: '1', Linkname: fmt.Sprintf("l%d/f2", i)})
		es = append(es, testimage.Entry{Name: fmt.Sprintf("l%d/sym", i), Type: '2', Linkname: "f3"})
		layers = append(layers, testimage.Layer{Entries: es, Compression: c})
	}
	dir := t.TempDir()
	l, err := testimage.Write(dir, testimage.Ref{Name: "ra", Image: &testimage.Image{Layers: layers}})
	if err != nil {
		t.Fatal(err)
	}
	return dir, l
}

func openReader(t *testing.T, layoutDir string, span int64) (*ociclip.Reader, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ra.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: layoutDir, OutputPath: out, SpanBytes: span, StorageImageRef: "example.com/ra:1",
	}); err != nil {
		t.Fatal(err)
	}
	r, err := ociclip.OpenReader(out, layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, out
}

func TestReaderMatchesReplay(t *testing.T) {
	dir, l := randomAccessImage(t)
	r, _ := openReader(t, dir, 64<<10)
	want, err := testimage.Replay(l.Images["ra"].LayerTars)
	if err != nil {
		t.Fatal(err)
	}
	points := 0
	for _, le := range r.Archive().Extension.Layers {
		points += len(le.Points)
		if le.Compression == "gzip" && len(le.Points) < 10 {
			t.Errorf("layer %s: only %d resume points at a 64 KiB span", le.Digest, len(le.Points))
		}
	}
	if points == 0 {
		t.Fatal("no resume points")
	}
	files := 0
	for _, p := range testimage.SortedPaths(want) {
		w := want[p]
		if w.Type != "file" {
			continue
		}
		files++
		b, err := r.ReadFile(strings.TrimPrefix(p, "/"))
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", p, err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != w.SHA256 {
			t.Errorf("%s: content differs from the replay", p)
		}
	}
	// Symlinks are followed.
	b, err := r.ReadFile("l0/sym")
	if err != nil || hex.EncodeToString(sha(b)) != want["/l0/f3"].SHA256 {
		t.Errorf("/l0/sym: %v", err)
	}
	if files != 7*7 {
		t.Errorf("%d files", files)
	}
	res, err := r.Verify(context.Background(), nil)
	if err != nil || res.Files != files {
		t.Errorf("Verify: %+v, %v", res, err)
	}
}

func sha(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

// Reads at random offsets equal slices of the whole file, and a small read
// near the end of a big gzip layer inflates at most about one span, not the
// layer.
func TestReaderRandomOffsetsAndSpan(t *testing.T) {
	dir, _ := randomAccessImage(t)
	const span = 64 << 10
	r, _ := openReader(t, dir, span)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 7; i++ {
		for j := 0; j < 6; j++ {
			p := fmt.Sprintf("/l%d/f%d", i, j)
			whole, err := r.ReadFile(strings.TrimPrefix(p, "/"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := r.Node(p)
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 5; k++ {
				off := rng.Int63n(int64(len(whole)))
				buf := make([]byte, 1+rng.Intn(5000))
				got, err := readNodeAt(r, n, buf, off)
				if err != nil && err != io.EOF {
					t.Fatalf("%s ReadAt(%d): %v", p, off, err)
				}
				if !bytes.Equal(buf[:got], whole[off:off+int64(got)]) {
					t.Fatalf("%s ReadAt(%d, %d) differs", p, off, len(buf))
				}
				if err == io.EOF && off+int64(len(buf)) < int64(len(whole)) {
					t.Fatalf("%s: early EOF", p)
				}
			}
		}
	}
	// The last file of the first (gzip) layer.
	n, err := r.Node("/l0/f5")
	if err != nil {
		t.Fatal(err)
	}
	before := r.Inflated()
	if _, err := readNodeAt(r, n, make([]byte, 100), n.Remote.ULength-100); err != nil {
		t.Fatal(err)
	}
	inflated := r.Inflated() - before
	var usize int64
	for _, le := range r.Archive().Extension.Layers {
		if le.Digest == n.Remote.LayerDigest {
			usize = le.USize
		}
	}
	// One span between resume points (plus the block that ends it) and one
	// checksum chunk.
	if limit := int64(2*span + 64<<10 + 100); inflated > limit || inflated*5 > usize {
		t.Errorf("a 100-byte read inflated %d bytes (layer %d bytes, limit %d)", inflated, usize, limit)
	}
	t.Logf("100-byte read near the end of a %d-byte layer inflated %d bytes", usize, inflated)
}

// A wrong window, a wrong offset or a changed blob is detected, never
// returned as data.
func TestReaderDetectsCorruption(t *testing.T) {
	dir, _ := randomAccessImage(t)
	_, out := openReader(t, dir, 64<<10)

	load := func() *archive.Archive {
		a, err := archive.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	readAll := func(a *archive.Archive, blobs ociclip.BlobOpener) error {
		fr := ociclip.NewReader(a, blobs)
		for _, n := range a.Nodes {
			if n.NodeType != common.FileNode {
				continue
			}
			if _, err := fr.ReadFile(strings.TrimPrefix(n.Path, "/")); err != nil {
				return err
			}
		}
		return nil
	}
	r, err := ociclip.OpenReader(out, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	blobs := dirBlobs(dir)
	if err := readAll(load(), blobs); err != nil {
		t.Fatalf("clean archive: %v", err)
	}

	t.Run("wrong window", func(t *testing.T) {
		a := load()
		var wc layerz.WindowCompressor
		for li := range a.Extension.Layers {
			for pi := range a.Extension.Layers[li].Points {
				p := &a.Extension.Layers[li].Points[pi]
				w, err := p.Window()
				if err != nil {
					t.Fatal(err)
				}
				for i := range w {
					w[i] ^= 0x55
				}
				p.ZWindow = wc.Compress(w)
			}
		}
		if err := readAll(a, blobs); !errors.Is(err, ociclip.ErrVerify) {
			t.Errorf("err = %v, want ErrVerify", err)
		}
	})
	t.Run("wrong offsets", func(t *testing.T) {
		a := load()
		for li := range a.Extension.Layers {
			for pi := range a.Extension.Layers[li].Points {
				a.Extension.Layers[li].Points[pi].UOff += 3
			}
		}
		if err := readAll(a, blobs); err == nil {
			t.Error("no error with shifted resume points")
		}
	})
	t.Run("changed blob", func(t *testing.T) {
		a := load()
		changed := t.TempDir()
		for _, le := range a.Extension.Layers {
			b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", le.Digest[len("sha256:"):]))
			if err != nil {
				t.Fatal(err)
			}
			if le.Compression == "none" {
				b[len(b)/2] ^= 0xff // inside some file's data
			} else {
				b[len(b)/2] ^= 0x01
			}
			if err := os.WriteFile(filepath.Join(changed, le.Digest[len("sha256:"):]), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := readAll(a, dirBlobs(changed)); err == nil {
			t.Error("no error with changed blobs")
		}
	})
}

// dirBlobs opens blobs by digest hex from a directory (a layout's
// blobs/sha256 or a flat directory).
type dirBlobs string

func (d dirBlobs) OpenLayer(dg string) (io.ReaderAt, int64, error) {
	hexd := dg[len("sha256:"):]
	p := filepath.Join(string(d), "blobs", "sha256", hexd)
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(string(d), hexd)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, 0, err
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// readNodeAt reads file node n at off through its io.SectionReader.
func readNodeAt(r *ociclip.Reader, n *common.ClipNode, b []byte, off int64) (int, error) {
	sr, err := r.OpenNode(n)
	if err != nil {
		return 0, err
	}
	return sr.ReadAt(b, off)
}

// TestReaderFS checks the Reader against testing/fstest's conformance test
// (Open, Stat, ReadFile, ReadDir, io.Seeker and io.ReaderAt behaviour) and
// that fs.WalkDir sees exactly the archive's nodes.
func TestReaderFS(t *testing.T) {
	out := filepath.Join(t.TempDir(), "busybox.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: "testdata/busybox", LayoutRef: "1.35", OutputPath: out,
	}); err != nil {
		t.Fatal(err)
	}
	r, err := ociclip.OpenReader(out, "testdata/busybox")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var want []string
	for _, n := range r.Archive().Nodes {
		if n.Path != "/" {
			want = append(want, strings.TrimPrefix(n.Path, "/"))
		}
	}
	var got []string
	if err := fs.WalkDir(r, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." {
			got = append(got, p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("WalkDir found %d paths, the archive has %d nodes", len(got), len(want))
	}
	// fstest.TestFS walks and reads every file below its root with many
	// small reads, each inflating from a resume point: /etc's small files
	// keep it quick; the walk above covers the whole tree.
	etc, err := fs.Sub(r, "etc")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(etc, "passwd", "group"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("/etc/passwd"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open of a rooted name: %v, want fs.ErrInvalid", err)
	}
	if _, err := r.Open("etc/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing name: %v, want fs.ErrNotExist", err)
	}
	f, err := r.Open("etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		t.Fatal("the file of a regular file is not an io.ReaderAt")
	}
	whole, err := r.ReadFile("etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if n, err := ra.ReadAt(b, 5); n != 5 || err != nil || string(b) != string(whole[5:10]) {
		t.Errorf("ReadAt(5 bytes at 5) = %d, %v, %q; want %q", n, err, b, whole[5:10])
	}
}

// TestVerifyThroughSymlinkedParents: files whose tar names run through a
// symlinked directory (usrmerge's lib -> usr/lib) land elsewhere in the
// merged tree, and hard links through such parents too; Verify checks each
// node against the replayed entry its data location names, so none is a
// mismatch (it compared by tar path, and reported all of them).
func TestVerifyThroughSymlinkedParents(t *testing.T) {
	dir := t.TempDir()
	layers := []testimage.Layer{
		{Entries: []testimage.Entry{
			{Name: "usr/", Type: tar.TypeDir}, {Name: "usr/lib/", Type: tar.TypeDir},
			{Name: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		}, Compression: testimage.Gzip},
		{Entries: []testimage.Entry{
			{Name: "lib/x.so", Body: bytes.Repeat([]byte("x.so "), 20000)},
			{Name: "lib/y.so", Type: tar.TypeLink, Linkname: "lib/x.so"},
			{Name: "etc/", Type: tar.TypeDir},
			{Name: "etc/conf", Body: []byte("conf\n")},
		}, Compression: testimage.Gzip},
	}
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v", Image: &testimage.Image{Layers: layers}}); err != nil {
		t.Fatal(err)
	}
	r, _ := openReader(t, dir, 0)
	for _, p := range []string{"/usr/lib/x.so", "/usr/lib/y.so"} {
		if n, err := r.Lnode(p); err != nil || n.NodeType != common.FileNode {
			t.Fatalf("%s: %v (the merge should place it through the symlink)", p, err)
		}
	}
	res, err := r.Verify(context.Background(), func(p string, err error) { t.Errorf("Verify: %s: %v", p, err) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || len(res.Mismatches) != 0 {
		t.Errorf("Verify checked %d files with %d mismatches, want 3 and 0", res.Files, len(res.Mismatches))
	}
}
