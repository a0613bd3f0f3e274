package spans_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/spans"
)

// counting wraps a Source: it counts OpenRange calls and can flip one byte
// of every range that holds blob offset flip (when flip >= 0).
type counting struct {
	spans.Source
	calls atomic.Int64
	flip  int64
}

func (c *counting) OpenRange(ctx context.Context, d string, off, n int64) (io.ReadCloser, error) {
	c.calls.Add(1)
	rc, err := c.Source.OpenRange(ctx, d, off, n)
	if err != nil || c.flip < off || (n >= 0 && c.flip >= off+n) || c.flip < 0 {
		return rc, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	if c.flip-off < int64(len(b)) {
		b[c.flip-off] ^= 0x20
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type oneLayer struct {
	a      *archive.Archive
	src    *counting
	digest string
	u      []byte // the uncompressed stream
	blob   int64  // blob size
}

func textish(r *rand.Rand, n int) []byte {
	words := []string{"lorem ", "ipsum ", "dolor\n", "sit ", "amet ", "0xdeadbeef ", "func main() {\n"}
	var b []byte
	for len(b) < n {
		if r.IntN(6) == 0 {
			b = append(b, byte(r.IntN(256)))
		} else {
			b = append(b, words[r.IntN(len(words))]...)
		}
	}
	return b[:n]
}

// makeLayer writes a one-layer image (about 1.5 MiB uncompressed) with
// compression c and indexes it with 64 KiB spans.
func makeLayer(t testing.TB, c testimage.Compression) *oneLayer {
	t.Helper()
	return makeLayerSpans(t, c, 64<<10)
}

// makeLayerSpans is makeLayer with resume points span bytes apart.
func makeLayerSpans(t testing.TB, c testimage.Compression, span int64) *oneLayer {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	var es []testimage.Entry
	for i := 0; i < 12; i++ {
		es = append(es, testimage.Entry{Name: fmt.Sprintf("f%d", i), Body: textish(r, 20_000+r.IntN(200_000))})
	}
	dir := t.TempDir()
	l, err := testimage.Write(dir, testimage.Ref{Name: "1", Image: &testimage.Image{Layers: []testimage.Layer{{Entries: es, Compression: c}}}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: dir, OutputPath: out, SpanBytes: span, SmallFileSpanBytes: -1}); err != nil {
		t.Fatal(err)
	}
	a, err := archive.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := blobs.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lay.Close() })
	img := l.Images["1"]
	return &oneLayer{a: a, src: &counting{Source: lay, flip: -1}, digest: img.LayerDigests[0].String(), u: img.LayerTars[0], blob: int64(len(img.LayerBlobs[0]))}
}

var compressions = []testimage.Compression{testimage.Gzip, testimage.GzipMulti, testimage.ZstdMulti, testimage.None}

// TestEngineReadsRightBytes: random reads from 8 goroutines through a
// cache much smaller than the layer return the layer's bytes, and the
// cache stays within its budget.
func TestEngineReadsRightBytes(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			l := makeLayer(t, c)
			e := spans.New(l.a, l.src, spans.Options{CacheSize: 256 << 10})
			defer e.Close()
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 1))
					for i := 0; i < 50; i++ {
						off := r.Int64N(int64(len(l.u)))
						n := min(1+r.Int64N(300<<10), int64(len(l.u))-off)
						b := make([]byte, n)
						if err := e.ReadAt(context.Background(), l.digest, b, off); err != nil {
							t.Errorf("ReadAt(%d, %d): %v", off, n, err)
							return
						}
						if !bytes.Equal(b, l.u[off:off+n]) {
							t.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			if st := e.Stats(); st.Cached > 256<<10 || st.Misses == 0 {
				t.Errorf("stats %+v", st)
			}
			if err := e.ReadAt(context.Background(), l.digest, make([]byte, 10), int64(len(l.u))-5); !errors.Is(err, spans.ErrVerify) {
				t.Errorf("read past the end: %v, want ErrVerify", err)
			}
		})
	}
}

// TestEngineSharesFetch: 16 concurrent reads of one span make one fetch;
// a small read fetches a small part of the blob.
func TestEngineSharesFetch(t *testing.T) {
	l := makeLayer(t, testimage.Gzip)
	e := spans.New(l.a, l.src, spans.Options{ReadAhead: -1})
	defer e.Close()
	off := int64(len(l.u)) - 1000
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 100)
			if err := e.ReadAt(context.Background(), l.digest, b, off); err != nil || !bytes.Equal(b, l.u[off:off+100]) {
				t.Errorf("ReadAt: %v", err)
			}
		}()
	}
	wg.Wait()
	st := e.Stats()
	if st.Misses != 1 || l.src.calls.Load() != 1 {
		t.Errorf("%d spans fetched with %d ranged reads, want 1 and 1", st.Misses, l.src.calls.Load())
	}
	if st.Fetched*4 > l.blob {
		t.Errorf("a 100-byte read fetched %d of %d bytes", st.Fetched, l.blob)
	}
}

// TestEngineReadAhead: reading a layer in order fetches the next span in
// the background: one more span than the same reads without read-ahead.
func TestEngineReadAhead(t *testing.T) {
	l := makeLayer(t, testimage.Gzip)
	var base int64
	misses := func(readAhead int) int64 {
		// Enough fetch slots that a read-ahead is never skipped.
		e := spans.New(l.a, l.src, spans.Options{ReadAhead: readAhead, Parallel: 16})
		b := make([]byte, 32<<10)
		for off := int64(0); off+int64(len(b)) <= 256<<10; off += int64(len(b)) {
			if err := e.ReadAt(context.Background(), l.digest, b, off); err != nil || !bytes.Equal(b, l.u[off:off+int64(len(b))]) {
				t.Fatalf("ReadAt(%d): %v", off, err)
			}
		}
		if readAhead > 0 {
			// The read-ahead runs in the background: give it time.
			for deadline := time.Now().Add(10 * time.Second); e.Stats().Misses <= base && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		e.Close()
		return e.Stats().Misses
	}
	base = misses(-1)
	if with := misses(1); with != base+1 {
		t.Errorf("%d spans fetched with read-ahead, %d without: want one more", with, base)
	}
}

// TestEngineDiskCache: a second engine on the same cache directory fetches
// nothing; a damaged cache file is fetched again, never returned.
func TestEngineDiskCache(t *testing.T) {
	l := makeLayer(t, testimage.Gzip)
	dir := t.TempDir()
	readAll := func() spans.Stats {
		e := spans.New(l.a, l.src, spans.Options{CacheDir: dir})
		defer e.Close()
		b := make([]byte, len(l.u))
		if err := e.ReadAt(context.Background(), l.digest, b, 0); err != nil || !bytes.Equal(b, l.u) {
			t.Fatalf("ReadAt: %v", err)
		}
		return e.Stats()
	}
	if st := readAll(); st.Fetched == 0 {
		t.Fatalf("first read fetched nothing: %+v", st)
	}
	if st := readAll(); st.Fetched != 0 {
		t.Errorf("second engine fetched %d bytes", st.Fetched)
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 2 {
		t.Fatalf("%d cache files", len(files))
	}
	b, _ := os.ReadFile(files[1])
	b[len(b)/2] ^= 1
	os.WriteFile(files[1], b, 0o644)
	if st := readAll(); st.Fetched == 0 {
		t.Errorf("the damaged span was not fetched again: %+v", st)
	}
}

// TestEngineCorruptSource: a source serving one other byte makes the reads
// of that span fail with ErrVerify and one log line naming the layer and
// offset; the engine never returns the wrong bytes.
func TestEngineCorruptSource(t *testing.T) {
	for _, c := range compressions {
		t.Run(string(c), func(t *testing.T) {
			l := makeLayer(t, c)
			l.src.flip = l.blob / 2
			var mu sync.Mutex
			var logs []string
			e := spans.New(l.a, l.src, spans.Options{ReadAhead: -1, Logf: func(f string, a ...any) {
				mu.Lock()
				logs = append(logs, fmt.Sprintf(f, a...))
				mu.Unlock()
			}})
			defer e.Close()
			bad := 0
			for off := int64(0); off < int64(len(l.u)); off += 16 << 10 {
				n := min(16<<10, int64(len(l.u))-off)
				b := make([]byte, n)
				err := e.ReadAt(context.Background(), l.digest, b, off)
				switch {
				case errors.Is(err, spans.ErrVerify):
					bad++
				case err != nil:
					t.Fatalf("ReadAt(%d): %v", off, err)
				case !bytes.Equal(b, l.u[off:off+n]):
					t.Fatalf("ReadAt(%d): wrong bytes returned", off)
				}
			}
			if bad == 0 {
				t.Fatal("no read failed")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(logs) == 0 || !strings.Contains(logs[0], l.digest) || !strings.Contains(logs[0], "offset") {
				t.Errorf("log: %q", logs)
			}
		})
	}
}

// TestEngineReadFileAt: the first read of a small file decodes its span to
// the file's end, so that the file's next reads decode nothing; a plain
// ReadAt decodes to the chunk that ends the read only.
func TestEngineReadFileAt(t *testing.T) {
	l := makeLayerSpans(t, testimage.Gzip, 1<<20)
	const fileEnd = 200 << 10
	for _, hint := range []bool{true, false} {
		e := spans.New(l.a, l.src, spans.Options{ReadAhead: -1})
		first := make([]byte, 4<<10)
		var err error
		if hint {
			err = e.ReadFileAt(context.Background(), l.digest, first, 0, fileEnd)
		} else {
			err = e.ReadAt(context.Background(), l.digest, first, 0)
		}
		if err != nil || !bytes.Equal(first, l.u[:len(first)]) {
			t.Fatalf("first read (hint %v): %v", hint, err)
		}
		before := e.Stats().Inflated
		rest := make([]byte, fileEnd-len(first))
		if err := e.ReadFileAt(context.Background(), l.digest, rest, int64(len(first)), fileEnd); err != nil || !bytes.Equal(rest, l.u[len(first):fileEnd]) {
			t.Fatalf("rest of the file (hint %v): %v", hint, err)
		}
		more := e.Stats().Inflated - before
		switch {
		case hint && more != 0:
			t.Errorf("ReadFileAt: the rest of the file inflated %d more bytes", more)
		case !hint && more == 0:
			t.Errorf("ReadAt: the rest of the file inflated nothing more (the test cannot tell the two apart)")
		}
		e.Close()
	}
	// A file ending far after the read: decoded as by ReadAt.
	e := spans.New(l.a, l.src, spans.Options{ReadAhead: -1})
	defer e.Close()
	if err := e.ReadFileAt(context.Background(), l.digest, make([]byte, 4<<10), 0, 900<<10); err != nil {
		t.Fatal(err)
	}
	if n := e.Stats().Inflated; n > 256<<10 {
		t.Errorf("a read of 4 KiB of a 900 KiB file inflated %d bytes", n)
	}
}

// TestEngineMinSpan: MinSpan joins short spans, so reading the layer in
// order starts fewer decoders, and still returns its bytes.
func TestEngineMinSpan(t *testing.T) {
	l := makeLayer(t, testimage.Gzip)
	misses := func(minSpan int64) int64 {
		e := spans.New(l.a, l.src, spans.Options{MinSpan: minSpan, ReadAhead: -1})
		defer e.Close()
		b := make([]byte, 32<<10)
		for off := int64(0); off < int64(len(l.u)); off += int64(len(b)) {
			p := b[:min(int64(len(b)), int64(len(l.u))-off)]
			if err := e.ReadAt(context.Background(), l.digest, p, off); err != nil || !bytes.Equal(p, l.u[off:off+int64(len(p))]) {
				t.Fatalf("MinSpan %d: ReadAt(%d): %v", minSpan, off, err)
			}
		}
		return e.Stats().Misses
	}
	fine, coarse := misses(0), misses(512<<10)
	if max := int64(len(l.u))/(512<<10) + 1; coarse > max || fine <= coarse {
		t.Errorf("%d spans decoded with MinSpan 512 KiB (at most %d), %d without", coarse, max, fine)
	}
}
