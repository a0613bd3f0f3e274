package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layercache"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// copyLayout copies the layout at src into a new temporary directory, so
// that a test may delete or corrupt its blobs.
func copyLayout(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// layerDigests returns the layer digests of the busybox image of a layout.
func layerDigests(t testing.TB, dir, ref string) []digest.Digest {
	t.Helper()
	l, err := ociread.Open(dir, ociread.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	img, err := l.Resolve(context.Background(), ociread.Select{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	var ds []digest.Digest
	for _, d := range img.Layers {
		ds = append(ds, d.Digest)
	}
	return ds
}

// run indexes the layout at dir into a new file and returns the result and
// the archive bytes.
func indexArchive(t testing.TB, opts ociclip.Options) (*ociclip.Result, []byte) {
	t.Helper()
	if opts.OutputPath == "" {
		opts.OutputPath = filepath.Join(t.TempDir(), "out.clip")
	}
	res, err := ociclip.CreateFromOCILayout(context.Background(), opts)
	if err != nil {
		t.Fatalf("CreateFromOCILayout: %v", err)
	}
	b, err := os.ReadFile(opts.OutputPath)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// cacheEntries returns the cache entry files by layer digest.
func cacheEntries(t testing.TB, dir string) map[digest.Digest][]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[digest.Digest][]string{}
	for _, e := range ents {
		alg, rest, ok := strings.Cut(e.Name(), "-")
		hex, _, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("unexpected file %s in the cache", e.Name())
			continue
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		m[d] = append(m[d], filepath.Join(dir, e.Name()))
	}
	return m
}

func cacheWarnings(res *ociclip.Result) []string {
	var w []string
	for _, s := range res.Warnings {
		if strings.Contains(s, "layer cache") {
			w = append(w, s)
		}
	}
	return w
}

func TestCacheColdWarmIdentical(t *testing.T) {
	layout := copyLayout(t, testdataDir+"/busybox")
	cache := filepath.Join(t.TempDir(), "cache")
	opts := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef}
	_, want := indexArchive(t, opts)

	opts.CacheDir = cache
	cold, coldBytes := indexArchive(t, opts)
	if cold.CachedLayers != 0 || len(cacheWarnings(cold)) != 0 {
		t.Errorf("cold run: %d cached layers, warnings %q", cold.CachedLayers, cold.Warnings)
	}
	if !bytes.Equal(coldBytes, want) {
		t.Error("cold run with a cache wrote different bytes than a run without")
	}
	ents := cacheEntries(t, cache)
	for _, d := range layerDigests(t, layout, "1.35") {
		if len(ents[d]) != 1 {
			t.Errorf("layer %s has cache entries %v", d, ents[d])
		}
	}

	var (
		mu     sync.Mutex
		events []ociclip.LayerProgress
	)
	progress := make(chan ociclip.Progress, 100)
	opts.ProgressChan = progress
	opts.LayerProgress = func(p ociclip.LayerProgress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}
	warm, warmBytes := indexArchive(t, opts)
	close(progress)
	if warm.CachedLayers != 3 || len(warm.Warnings) != 0 {
		t.Errorf("warm run: %d cached layers, warnings %q", warm.CachedLayers, warm.Warnings)
	}
	if !bytes.Equal(warmBytes, want) {
		t.Error("warm run wrote different bytes than a run without cache")
	}
	if warm.CompressedBytes != cold.CompressedBytes || warm.UncompressedBytes != cold.UncompressedBytes || warm.Files != cold.Files {
		t.Errorf("warm %+v\ncold %+v", warm, cold)
	}
	var completed int
	for p := range progress {
		if p.Stage == ociclip.StageCompleted {
			completed++
			if p.Message != ociclip.MessageCached {
				t.Errorf("completed event of a cached layer: %+v", p)
			}
		}
	}
	if completed != 3 {
		t.Errorf("%d completed events", completed)
	}
	for _, e := range events {
		if e.Stage == ociclip.StageIndexing || e.Stage == ociclip.StageCompleted && (!e.Cached || e.CompressedRead != e.CompressedTotal || e.Entries == 0) {
			t.Errorf("warm run layer event %+v", e)
		}
	}
	if len(events) != 6 {
		t.Errorf("%d layer events, want a start and a completion per layer", len(events))
	}
}

// A warm run does not open the layer blobs: with every layer blob deleted
// or corrupted it still succeeds and writes the same bytes (config and
// manifest are still read).
func TestCacheWarmRunReadsNoLayerBlob(t *testing.T) {
	for _, mode := range []string{"deleted", "corrupted"} {
		t.Run(mode, func(t *testing.T) {
			layout := copyLayout(t, testdataDir+"/busybox")
			opts := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef, CacheDir: t.TempDir()}
			_, want := indexArchive(t, opts)
			for _, d := range layerDigests(t, layout, "1.35") {
				var err error
				if mode == "deleted" {
					err = os.Remove(testimage.BlobPath(layout, d))
				} else {
					err = testimage.CorruptBlob(layout, d, testimage.FlipByte(100))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// Without the cache the damage is seen...
			noCache := opts
			noCache.CacheDir = ""
			noCache.OutputPath = filepath.Join(t.TempDir(), "x.clip")
			_, err := ociclip.CreateFromOCILayout(context.Background(), noCache)
			if !errors.Is(err, ociread.ErrBlobMissing) && !errors.Is(err, ociread.ErrDigestMismatch) && !errors.Is(err, tarindex.ErrCorrupt) {
				t.Fatalf("run without cache on %s blobs: %v", mode, err)
			}
			// ...with it, no layer blob is read.
			res, got := indexArchive(t, opts)
			if res.CachedLayers != 3 || !bytes.Equal(got, want) {
				t.Errorf("warm run: %d cached layers, same bytes %v", res.CachedLayers, bytes.Equal(got, want))
			}
		})
	}
}

func TestCacheCorruptEntryIgnoredAndRewritten(t *testing.T) {
	layout := copyLayout(t, testdataDir+"/busybox")
	ds := layerDigests(t, layout, "1.35")
	base := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef}
	_, want := indexArchive(t, base)
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, ents map[digest.Digest][]string)
	}{
		{"flipped byte", func(t *testing.T, ents map[digest.Digest][]string) {
			p := ents[ds[0]][0]
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"truncated", func(t *testing.T, ents map[digest.Digest][]string) {
			p := ents[ds[0]][0]
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-10)
		}},
		{"empty", func(t *testing.T, ents map[digest.Digest][]string) {
			os.WriteFile(ents[ds[0]][0], nil, 0o644)
		}},
		{"wrong key", func(t *testing.T, ents map[digest.Digest][]string) {
			b, _ := os.ReadFile(ents[ds[1]][0])
			os.WriteFile(ents[ds[0]][0], b, 0o644)
		}},
		{"unreadable", func(t *testing.T, ents map[digest.Digest][]string) {
			// A directory where the entry should be: reading fails, and so
			// does the rewrite (reported, the run still succeeds).
			p := ents[ds[0]][0]
			os.Remove(p)
			os.MkdirAll(filepath.Join(p, "x"), 0o755)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			opts.CacheDir = t.TempDir()
			indexArchive(t, opts)
			tc.mutate(t, cacheEntries(t, opts.CacheDir))
			res, got := indexArchive(t, opts)
			if res.CachedLayers != 2 || !bytes.Equal(got, want) {
				t.Errorf("run over a bad entry: %d cached layers, same bytes %v", res.CachedLayers, bytes.Equal(got, want))
			}
			w := cacheWarnings(res)
			if len(w) == 0 || !strings.Contains(w[0], ds[0].Encoded()) {
				t.Errorf("warnings %q do not report the bad entry of %s", res.Warnings, ds[0])
			}
			res, got = indexArchive(t, opts)
			wantCached := 3
			if tc.name == "unreadable" {
				wantCached = 2
			}
			if res.CachedLayers != wantCached || !bytes.Equal(got, want) {
				t.Errorf("run after the rewrite: %d cached layers (want %d), warnings %q", res.CachedLayers, wantCached, res.Warnings)
			}
			if wantCached == 3 && len(res.Warnings) != 0 {
				t.Errorf("warnings after the rewrite: %q", res.Warnings)
			}
		})
	}
}

// An entry written with other options is not used.
func TestCacheOptionsAreInTheKey(t *testing.T) {
	layout := copyLayout(t, testdataDir+"/busybox")
	cache := t.TempDir()
	base := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef}
	withCache := base
	withCache.CacheDir = cache
	indexArchive(t, withCache) // CheckpointMiB 2
	for _, tc := range []struct {
		name string
		edit func(*ociclip.Options)
	}{
		{"checkpoint", func(o *ociclip.Options) { o.CheckpointMiB = 1 }},
		{"span", func(o *ociclip.Options) { o.SpanBytes = 256 << 10 }},
		{"no span", func(o *ociclip.Options) { o.SpanBytes = -1 }},
		{"limit", func(o *ociclip.Options) { o.Limits.MaxEntries = 100000 }},
	} {
		plain, cached := base, withCache
		tc.edit(&plain)
		tc.edit(&cached)
		_, want := indexArchive(t, plain)
		res, got := indexArchive(t, cached)
		if res.CachedLayers != 0 || !bytes.Equal(got, want) {
			t.Errorf("%s: first run with changed options: %d cached layers, same bytes as uncached %v", tc.name, res.CachedLayers, bytes.Equal(got, want))
		}
		res, got = indexArchive(t, cached)
		if res.CachedLayers != 3 || !bytes.Equal(got, want) {
			t.Errorf("%s: second run: %d cached layers, same bytes %v", tc.name, res.CachedLayers, bytes.Equal(got, want))
		}
	}
	// The default options still hit their own entries.
	if res, _ := indexArchive(t, withCache); res.CachedLayers != 3 {
		t.Errorf("default options: %d cached layers", res.CachedLayers)
	}
	// A limit the cached layer exceeds rejects it, as without the cache.
	limited := withCache
	limited.Limits.MaxEntries = 5
	limited.OutputPath = filepath.Join(t.TempDir(), "x.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), limited); !errors.Is(err, tarindex.ErrLimit) {
		t.Errorf("MaxEntries 5 with a warm cache: %v, want ErrLimit", err)
	}
}

// The DiffID of a cached result is checked against the config: an entry
// that disagrees is not used, and a config that disagrees with the layer
// still fails.
func TestCacheDiffIDChecked(t *testing.T) {
	layout := copyLayout(t, testdataDir+"/busybox")
	ds := layerDigests(t, layout, "1.35")
	cacheDir := t.TempDir()
	opts := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef, CacheDir: cacheDir}
	_, want := indexArchive(t, opts)

	// A well-formed entry (valid checksum) with a wrong DiffID.
	c, err := layercache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := layercache.NewKey(ds[2], v1.MediaTypeImageLayerGzip, tarindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	good := r.DiffID
	r.DiffID = digest.FromString("something else")
	if err := c.Put(k, r); err != nil {
		t.Fatal(err)
	}
	res, got := indexArchive(t, opts)
	if res.CachedLayers != 2 || !bytes.Equal(got, want) || len(cacheWarnings(res)) != 1 || !strings.Contains(cacheWarnings(res)[0], "disagrees") {
		t.Errorf("forged DiffID: %d cached, same bytes %v, warnings %q", res.CachedLayers, bytes.Equal(got, want), res.Warnings)
	}
	if r, err := c.Get(k); err != nil || r.DiffID != good {
		t.Errorf("entry not rewritten: %v %v", r, err)
	}

	// An image whose config names another DiffID for a cached layer.
	dir := t.TempDir()
	img := &testimage.Image{Layers: []testimage.Layer{{Entries: []testimage.Entry{{Name: "a", Body: []byte("a")}}}}}
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: img}); err != nil {
		t.Fatal(err)
	}
	gen := ociclip.Options{LayoutPath: dir, LayoutRef: "v1", CacheDir: cacheDir}
	indexArchive(t, gen)
	img.EditConfig = func(c *v1.Image) { c.RootFS.DiffIDs[0] = digest.FromString("wrong") }
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: img}); err != nil {
		t.Fatal(err)
	}
	gen.OutputPath = filepath.Join(t.TempDir(), "x.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), gen); !errors.Is(err, ociclip.ErrDiffIDMismatch) {
		t.Errorf("wrong config DiffID with a warm cache: %v, want ErrDiffIDMismatch", err)
	}
}

// Concurrent runs sharing one cache directory write correct archives.
func TestCacheConcurrentRuns(t *testing.T) {
	layout := copyLayout(t, testdataDir+"/busybox")
	base := ociclip.Options{LayoutPath: layout, LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef}
	_, want := indexArchive(t, base)
	for round := range 3 {
		opts := base
		opts.CacheDir = t.TempDir()
		if round == 2 {
			indexArchive(t, opts) // warm: both read while... nothing writes
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		outs := make([]string, 4)
		for i := range outs {
			outs[i] = filepath.Join(t.TempDir(), fmt.Sprintf("%d.clip", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := opts
				o.OutputPath = outs[i]
				o.Concurrency = 1 + i%2
				res, err := ociclip.CreateFromOCILayout(context.Background(), o)
				if err == nil && len(res.Warnings) != 0 {
					err = fmt.Errorf("warnings %q", res.Warnings)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, out := range outs {
			if errs[i] != nil {
				t.Errorf("round %d run %d: %v", round, i, errs[i])
				continue
			}
			if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, want) {
				t.Errorf("round %d run %d wrote different bytes (%v)", round, i, err)
			}
		}
		if res, _ := indexArchive(t, opts); res.CachedLayers != 3 || len(res.Warnings) != 0 {
			t.Errorf("round %d: afterwards %d cached layers, warnings %q", round, res.CachedLayers, res.Warnings)
		}
	}
}

func TestCacheDirErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	out := filepath.Join(t.TempDir(), "x.clip")
	_, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: testdataDir + "/busybox", OutputPath: out, CacheDir: f})
	if err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("cache dir that is a file: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written")
	}
}

// LayerProgress reports the bytes of every layer as they are read.
func TestLayerProgress(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	img := &testimage.Image{Layers: []testimage.Layer{
		{Entries: []testimage.Entry{{Name: "big", Body: big}}},
		{Entries: []testimage.Entry{{Name: "small", Body: []byte("x")}}},
	}}
	w, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: img})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events = map[int][]ociclip.LayerProgress{}
	)
	indexArchive(t, ociclip.Options{LayoutPath: dir, LayoutRef: "v1", LayerProgress: func(p ociclip.LayerProgress) {
		mu.Lock()
		events[p.LayerIndex] = append(events[p.LayerIndex], p)
		mu.Unlock()
	}})
	written := w.Images["v1"]
	for i := 1; i <= 2; i++ {
		ev := events[i]
		size := int64(len(written.LayerBlobs[i-1]))
		if len(ev) < 2 || ev[0].Stage != ociclip.StageStarting || ev[len(ev)-1].Stage != ociclip.StageCompleted {
			t.Fatalf("layer %d events %+v", i, ev)
		}
		last := ev[len(ev)-1]
		if last.CompressedRead != size || last.CompressedTotal != size || last.Cached || last.Entries != 1 || last.TotalLayers != 2 ||
			last.LayerDigest != written.LayerDigests[i-1].String() {
			t.Errorf("layer %d final event %+v, blob size %d", i, last, size)
		}
		if !slices.IsSortedFunc(ev, func(a, b ociclip.LayerProgress) int { return int(a.CompressedRead - b.CompressedRead) }) {
			t.Errorf("layer %d: bytes go backwards: %+v", i, ev)
		}
	}
	if n := len(events[1]); n < 4 {
		t.Errorf("3 MiB layer: only %d events, want intermediate ones", n)
	}
}

// The logger receives the cache warnings and debug records.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", Logger: log, CacheDir: t.TempDir()}
	indexArchive(t, opts)
	indexArchive(t, opts)
	s := buf.String()
	for _, want := range []string{"level=WARN msg=\"no storage reference", "msg=\"layer cache miss\"", "msg=\"layer cache hit\"", "msg=\"indexed layer\"", "msg=\"wrote archive\""} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %s:\n%s", want, s)
		}
	}
}

func genLayer(rng *rand.Rand, files, size int, prefix string) testimage.Layer {
	var l testimage.Layer
	words := []string{"alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta "}
	for i := range files {
		var b strings.Builder
		for b.Len() < size {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(8) == 0 {
				fmt.Fprintf(&b, "%d\n", rng.Uint64())
			}
		}
		l.Entries = append(l.Entries, testimage.Entry{Name: fmt.Sprintf("%s/f%04d", prefix, i), Body: []byte(b.String()), ModTime: time.Unix(1700000000, 0)})
	}
	return l
}

// BenchmarkReindexSharedBase indexes an image whose base layer (about 24 MiB
// uncompressed) another image shares: "cold" without a cache, "warm" with a
// cache that holds the base layer only (the top layer's entry is removed
// after every iteration), and "top-only" an image of just the top layer, the
// floor a warm run should come close to.
func BenchmarkReindexSharedBase(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	baseLayer := genLayer(rng, 96, 256<<10, "usr/lib")
	top1 := genLayer(rng, 4, 16<<10, "app")
	top2 := genLayer(rng, 4, 16<<10, "app")
	dir := b.TempDir()
	if _, err := testimage.Write(dir,
		testimage.Ref{Name: "one", Image: &testimage.Image{Layers: []testimage.Layer{baseLayer, top1}}},
		testimage.Ref{Name: "two", Image: &testimage.Image{Layers: []testimage.Layer{baseLayer, top2}}},
		testimage.Ref{Name: "top", Image: &testimage.Image{Layers: []testimage.Layer{top2}}},
	); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "out.clip")
	// blobBytes counts the layer blob bytes actually read (not cached).
	var blobBytes atomic.Int64
	opts := ociclip.Options{LayoutPath: dir, OutputPath: out, LayerProgress: func(p ociclip.LayerProgress) {
		if p.Stage == ociclip.StageCompleted && !p.Cached {
			blobBytes.Add(p.CompressedRead)
		}
	}}
	index := func(o ociclip.Options) *ociclip.Result {
		res, err := ociclip.CreateFromOCILayout(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	report := func(b *testing.B, n int) {
		b.ReportMetric(float64(blobBytes.Swap(0))/float64(n), "blobB/op")
	}
	b.Run("cold", func(b *testing.B) {
		o := opts
		o.LayoutRef = "two"
		blobBytes.Store(0)
		for b.Loop() {
			index(o)
		}
		report(b, b.N)
	})
	b.Run("warm", func(b *testing.B) {
		o := opts
		o.CacheDir = b.TempDir()
		o.LayoutRef = "one"
		index(o)
		keep := map[string]bool{}
		ents, _ := os.ReadDir(o.CacheDir)
		for _, e := range ents {
			keep[e.Name()] = true
		}
		o.LayoutRef = "two"
		blobBytes.Store(0)
		b.ResetTimer()
		for range b.N {
			if res := index(o); res.CachedLayers != 1 {
				b.Fatalf("%d cached layers, want the base only", res.CachedLayers)
			}
			b.StopTimer()
			ents, _ := os.ReadDir(o.CacheDir)
			for _, e := range ents {
				if !keep[e.Name()] {
					os.Remove(filepath.Join(o.CacheDir, e.Name()))
				}
			}
			b.StartTimer()
		}
		report(b, b.N)
	})
	b.Run("top-only", func(b *testing.B) {
		o := opts
		o.LayoutRef = "top"
		blobBytes.Store(0)
		for b.Loop() {
			index(o)
		}
		report(b, b.N)
	})
}
