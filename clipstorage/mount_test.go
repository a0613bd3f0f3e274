package clipstorage_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testimage"
)

func init() {
	// clip's filesystem logs every FUSE call at debug level.
	clip.SetLogLevel("error")
}

func openLayout(t *testing.T, archivePath, dir string, lb *logBuf) *clipstorage.Storage {
	t.Helper()
	src, err := blobs.OpenLayout("oci:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := clipstorage.Open(archivePath, src, engineOpts(lb))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readConcurrently reads random ranges of random files from 16 goroutines
// and compares them with the reference files under ref.
func readConcurrently(t *testing.T, mnt, ref string, files []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16*40)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			for i := 0; i < 40; i++ {
				p := files[r.IntN(len(files))]
				want, err := os.ReadFile(filepath.Join(ref, p))
				if err != nil {
					errs <- err
					return
				}
				f, err := os.Open(filepath.Join(mnt, p))
				if err != nil {
					errs <- err
					return
				}
				off := r.Int64N(int64(len(want)))
				buf := make([]byte, 1+r.IntN(200<<10))
				n, err := f.ReadAt(buf, off)
				f.Close()
				end := min(off+int64(len(buf)), int64(len(want)))
				if n != int(end-off) || !bytes.Equal(buf[:n], want[off:end]) {
					errs <- errors.New(p + ": wrong bytes from a concurrent read")
				}
				if err != nil && n != len(buf) && n != int(end-off) {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMountLayout mounts ociclip's archive with clip's filesystem over the
// local layout and compares every path and file hash with umoci's
// extraction, then reads random ranges from 16 goroutines.
func TestMountLayout(t *testing.T) {
	requireFUSE(t)
	img := makeImage(t)
	out := index(t, img, "", 256<<10)
	lb := &logBuf{}
	s := openLayout(t, out, img.dir, lb)
	mnt := mount(t, s)
	ref, refDir := umociTree(t, img.dir)
	compare(t, walk(t, mnt), ref)
	readConcurrently(t, mnt, refDir, img.files)
	if st := s.Stats(); st.Misses == 0 || st.Inflated == 0 {
		t.Errorf("stats %+v: nothing fetched through the engine", st)
	}
	if strings.Contains(lb.String(), "failed") {
		t.Errorf("log: %s", lb)
	}
}

// mountRegistry pushes img to a loopback registry, indexes it with the
// registry's reference and mounts it with the registry as the source.
func mountRegistry(t *testing.T, img testImage, opts registrytest.Options) (*registrytest.Registry, *logBuf, string) {
	t.Helper()
	reg := registrytest.StartWith(t, opts)
	ref := reg.PushLayout(t, img.dir, "1.0", "test/img:1.0")
	out := index(t, img, ref, 256<<10)
	lb := &logBuf{}
	src, err := blobs.NewRegistry(ref, blobs.RegistryOptions{Logf: lb.Logf, Keychain: anonymous{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := clipstorage.Open(out, src, engineOpts(lb))
	if err != nil {
		t.Fatal(err)
	}
	return reg, lb, mount(t, s)
}

// TestMountRegistry mounts over the loopback registry (which honours Range
// and counts the bytes it serves): reading one small file fetches a small
// part of its layer; the whole tree matches umoci's; concurrent reads are
// right.
func TestMountRegistry(t *testing.T) {
	requireFUSE(t)
	img := makeImage(t)
	reg, lb, mnt := mountRegistry(t, img, registrytest.Options{Range: true})

	before := reg.BlobBytes(img.gzipD)
	b, err := os.ReadFile(filepath.Join(mnt, "usr/lib/f40"))
	if err != nil || len(b) == 0 {
		t.Fatalf("reading one file: %d bytes, %v", len(b), err)
	}
	blob, _ := os.ReadFile(testimage.BlobPath(img.dir, digest.Digest(img.gzipD)))
	got := reg.BlobBytes(img.gzipD) - before
	t.Logf("reading one %d-byte file fetched %d of the layer's %d bytes", len(b), got, len(blob))
	if got == 0 || got*2 > int64(len(blob)) {
		t.Errorf("reading one file fetched %d bytes of a %d-byte layer", got, len(blob))
	}

	want, refDir := umociTree(t, img.dir)
	compare(t, walk(t, mnt), want)
	readConcurrently(t, mnt, refDir, img.files)
	if strings.Contains(lb.String(), "ignores Range") {
		t.Errorf("warned about Range: %s", lb)
	}
}

// TestMountRegistryWithoutRange: a registry that ignores Range (200 with
// the whole blob) still serves right bytes, with one warning per layer.
func TestMountRegistryWithoutRange(t *testing.T) {
	requireFUSE(t)
	img := makeImage(t)
	_, lb, mnt := mountRegistry(t, img, registrytest.Options{Range: false})
	want, _ := umociTree(t, img.dir)
	compare(t, walk(t, mnt), want)
	if n := strings.Count(lb.String(), "ignores Range requests: reading layer "+img.gzipD); n != 1 {
		t.Errorf("%d Range warnings for the gzip layer, want 1; log:\n%s", n, lb)
	}
}

// TestMountTamperedBlob: a changed byte in the gzip layer blob makes the
// reads of the spans it affects fail with EIO (never wrong bytes), logs
// the layer digest and offset, and leaves the other files readable.
func TestMountTamperedBlob(t *testing.T) {
	requireFUSE(t)
	img := makeImage(t)
	out := index(t, img, "", 256<<10)
	// The reference bytes: a mount of the intact layout.
	ref := walk(t, mount(t, openLayout(t, out, img.dir, &logBuf{})))
	if err := testimage.CorruptBlob(img.dir, digest.Digest(img.gzipD), func(b []byte) []byte {
		b[len(b)/2] ^= 0x40
		return b
	}); err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	mnt := mount(t, openLayout(t, out, img.dir, lb))
	eio, ok := 0, 0
	for _, p := range img.files {
		b, err := os.ReadFile(filepath.Join(mnt, p))
		switch {
		case errors.Is(err, syscall.EIO):
			eio++
		case err != nil:
			t.Errorf("%s: %v, want EIO or the right bytes", p, err)
		default:
			ok++
			if sha256Hex(b) != ref[p].SHA256 {
				t.Errorf("%s: wrong bytes from a tampered blob", p)
			}
		}
	}
	if eio == 0 || ok == 0 {
		t.Errorf("%d reads failed with EIO and %d succeeded: want some of each", eio, ok)
	}
	if log := lb.String(); !strings.Contains(log, img.gzipD) || !strings.Contains(log, "offset") {
		t.Errorf("log does not name the layer and offset:\n%s", log)
	}
}

// TestMountWithoutResumePoints: an archive without ociclip's extension
// (as clip's own) still mounts: each layer is streamed once and kept, and
// the log says why.
func TestMountWithoutResumePoints(t *testing.T) {
	requireFUSE(t)
	img := makeImage(t)
	out := index(t, img, "", -1)
	lb := &logBuf{}
	mnt := mount(t, openLayout(t, out, img.dir, lb))
	want, _ := umociTree(t, img.dir)
	compare(t, walk(t, mnt), want)
	if !strings.Contains(lb.String(), "read whole once") {
		t.Errorf("no log line saying why the layer is read whole:\n%s", lb)
	}
}
