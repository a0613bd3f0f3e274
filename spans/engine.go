// Package spans reads the uncompressed bytes of image layers through
// ociclip's index, one span at a time: a span is the stretch of a layer's
// uncompressed stream between two places decoding can start (a gzip resume
// point, a zstd frame; 1 MiB pieces of an uncompressed layer), aligned to
// the layer's checksum chunks. The engine fetches only the compressed bytes
// of the spans a read needs from a Source (a local layout, a registry),
// inflates each once, verifies its CRC-32C chunks and keeps it in a bounded
// LRU cache in memory (and optionally on disk). Concurrent reads of one span
// share one fetch; different spans fetch in parallel; sequential reads
// trigger read-ahead of the next span.
//
// Layers without resume points (clip's own archives, or ociclip index
// --span-mib 0) are streamed once into a temporary file and read from it.
//
// The root package's Reader (ociclip cat, verify, the fs.FS API) and the
// clip storage backend (package clipstorage, ociclip mount) read through it.
package spans

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ociclip/ociclip/archive"
)

// Errors of the engine; returned errors wrap them.
var (
	// ErrVerify: the bytes of a layer do not match the index (a changed
	// blob, a registry serving other bytes, a CRC-32C mismatch, a corrupt
	// index). The engine never returns such bytes.
	ErrVerify = errors.New("layer data does not match the index")
	// ErrFetch: the blob source failed (after its retries).
	ErrFetch = errors.New("fetching layer bytes failed")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("span engine closed")
)

// DefaultCacheSize is the memory cache budget when Options.CacheSize is 0.
const DefaultCacheSize = 128 << 20

// A read is sequential (and triggers read-ahead) when it starts at most
// seqGap bytes after the end of one of the last reads of its layer, and
// the run of such reads is at least seqMinRun bytes long.
const seqGap = 8 << 10

// seqMinRun is how long a sequential run of reads must be before the
// engine reads ahead of it.
const seqMinRun = 256 << 10

// seqDecodeAhead is how far past a sequential read its span is decoded.
const seqDecodeAhead = 256 << 10

// ReadAheadBytes is how far ahead of a sequential read the engine fetches
// by default: the spans of stretches of small files are short (256 KiB), so
// a fixed number of spans would leave a walk of them waiting on each fetch.
const ReadAheadBytes = 4 << 20

// DefaultMaxSpan is Options.MaxSpan's default.
const DefaultMaxSpan = 64 << 20

// Options configure an Engine. The zero value is usable.
type Options struct {
	// CacheSize bounds the inflated bytes kept in memory (0:
	// DefaultCacheSize; negative: no memory cache). Spans being fetched
	// are not counted: at most Parallel of them at a time.
	CacheSize int64
	// CacheDir, when set, keeps every inflated span in a file under
	// CacheDir/<digest algorithm>/<hex>/<offset>-<end> across runs (each
	// verified again when loaded); the temporary file of a layer without
	// resume points goes there too while the engine is open.
	CacheDir string
	// Parallel bounds the spans fetched at once (0: 4).
	Parallel int
	// ReadAhead is how many spans after a sequential read (one that
	// continues the previous read of its layer) are fetched in the
	// background (0: as many as hold ReadAheadBytes; negative: none).
	ReadAhead int
	// FetchTimeout bounds the fetch and decoding of one span (0: 2 minutes)
	// and of a whole layer (ten times as long).
	FetchTimeout time.Duration
	// MaxSpan: a layer with a span longer than this is streamed once into
	// a file instead (0: DefaultMaxSpan).
	MaxSpan int64
	// MinSpan joins spans shorter than this with the ones after them (0:
	// none): a reader of whole layers in order (ociclip verify) starts fewer
	// decoders, a reader of single files inflates more per read.
	MinSpan int64
	// Logf receives one line per failed span fetch (naming the layer
	// digest and offset) and one per layer read whole (why). nil: silent.
	Logf func(format string, args ...any)
}

// Stats counts what an engine did.
type Stats struct {
	Fetched  int64 // compressed bytes read from the source
	Inflated int64 // bytes produced by decompression
	Hits     int64 // span reads served by the memory or disk cache
	Misses   int64 // spans fetched and decoded
	Cached   int64 // bytes in the memory cache now
}

// Engine reads layer bytes through the index of one archive. It is safe
// for concurrent use.
type Engine struct {
	a    *archive.Archive
	src  Source
	opts Options
	ctx  context.Context
	stop context.CancelFunc
	sem  chan struct{}

	mu       sync.Mutex
	layers   map[string]*layer
	inflight map[spanKey]*call
	lru      *list.List // of *entry, most recent first
	byKey    map[spanKey]*list.Element
	cached   int64

	fetched, inflated, hits, misses atomic.Int64
	bg                              sync.WaitGroup
}

type spanKey struct {
	digest string
	i      int
}

type entry struct {
	k spanKey
	b []byte // the span, or a prefix of it (capacity: the whole span)
	c *cont  // the decoder to continue a prefix, nil for a whole span
}

type call struct {
	done chan struct{}
	want int64 // bytes of the span to produce
	b    []byte
	err  error
}

// New returns an engine reading the layers of a from src.
func New(a *archive.Archive, src Source, opts Options) *Engine {
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 2 * time.Minute
	}
	if opts.MaxSpan <= 0 {
		opts.MaxSpan = DefaultMaxSpan
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Engine{
		a: a, src: src, opts: opts, ctx: ctx, stop: stop,
		sem:      make(chan struct{}, opts.Parallel),
		layers:   map[string]*layer{},
		inflight: map[spanKey]*call{},
		lru:      list.New(),
		byKey:    map[spanKey]*list.Element{},
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	c := e.cached
	e.mu.Unlock()
	return Stats{Fetched: e.fetched.Load(), Inflated: e.inflated.Load(), Hits: e.hits.Load(), Misses: e.misses.Load(), Cached: c}
}

// Close stops read-ahead, waits for it, drops the memory cache and the
// temporary files of layers read whole.
func (e *Engine) Close() error {
	e.stop()
	e.bg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	var first error
	for _, l := range e.layers {
		l.wholeOnce.Lock()
		if l.whole != nil {
			if err := l.whole.f.Close(); err != nil && first == nil {
				first = err
			}
			l.whole = nil
		}
		l.wholeOnce.Unlock()
	}
	for el := e.lru.Front(); el != nil; el = el.Next() {
		el.Value.(*entry).c.close()
	}
	e.lru.Init()
	e.byKey = map[spanKey]*list.Element{}
	e.cached = 0
	return first
}

func (e *Engine) logf(format string, args ...any) {
	if e.opts.Logf != nil {
		e.opts.Logf(format, args...)
	}
}

// layer returns (and keeps) the state of layer d. A failure is not kept:
// the next read tries again.
func (e *Engine) layer(ctx context.Context, d string) (*layer, error) {
	e.mu.Lock()
	l := e.layers[d]
	e.mu.Unlock()
	if l != nil {
		return l, nil
	}
	size, err := e.src.Size(ctx, d)
	if err != nil {
		if errors.Is(err, ErrVerify) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: layer %s: %v", ErrFetch, d, err)
	}
	l, err = newLayer(e.a, d, size, e.opts.MinSpan, e.opts.MaxSpan)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.layers[d]; old != nil {
		return old, nil
	}
	e.layers[d] = l
	return l, nil
}

// Prepare looks up every layer of the archive in the background (for a
// registry: the connection, the token exchange and a HEAD of each blob), so
// that the first read of a file does not wait for them. Failures are not
// kept: a read looks the layer up again.
func (e *Engine) Prepare() {
	seen := map[string]bool{}
	for _, d := range e.a.Storage.Layers {
		if seen[d] {
			continue
		}
		seen[d] = true
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			if e.ctx.Err() == nil {
				e.layer(e.ctx, d)
			}
		}()
	}
}

// CheckRange fails with an error wrapping ErrVerify when [uoff, uoff+n) is
// not inside layer d's uncompressed stream (as far as its length is known
// before reading it).
func (e *Engine) CheckRange(ctx context.Context, d string, uoff, n int64) error {
	l, err := e.layer(ctx, d)
	if err != nil {
		return err
	}
	return l.checkRange(uoff, n)
}

// ReadAt fills p with the uncompressed bytes of layer d at offset uoff. It
// returns an error (wrapping ErrVerify, ErrFetch or ctx's error) unless it
// filled all of p with verified bytes.
func (e *Engine) ReadAt(ctx context.Context, d string, p []byte, uoff int64) error {
	return e.readAt(ctx, d, p, uoff, 0)
}

// smallFile is how much of a file after a read ReadFileAt decodes with it.
const smallFile = 256 << 10

// ReadFileAt is ReadAt for a read of a file whose bytes end at uncompressed
// offset fileEnd of the layer. When the file ends at most 256 KiB after the
// read, its span is decoded to the file's end with the read: the rest of
// the file's reads (FUSE asks for 16, 32, 64 KiB at a time) then decode
// nothing, and the bytes decoded are the ones about to be read anyway.
func (e *Engine) ReadFileAt(ctx context.Context, d string, p []byte, uoff, fileEnd int64) error {
	if fileEnd-uoff > smallFile {
		fileEnd = 0
	}
	return e.readAt(ctx, d, p, uoff, fileEnd)
}

// readAt is ReadAt decoding the read's last span at least up to upto.
func (e *Engine) readAt(ctx context.Context, d string, p []byte, uoff, upto int64) error {
	if e.ctx.Err() != nil {
		return ErrClosed
	}
	l, err := e.layer(ctx, d)
	if err != nil {
		return err
	}
	if err := l.checkRange(uoff, int64(len(p))); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	if l.spans() == 0 {
		w, err := e.wholeOf(ctx, l)
		if err != nil {
			return err
		}
		return w.readAt(p, uoff)
	}
	first, last := l.spanOf(uoff), l.spanOf(uoff+int64(len(p))-1)
	if first < 0 || last >= l.spans() {
		return fmt.Errorf("%w: layer %s: offset %d outside its spans", ErrVerify, d, uoff)
	}
	// A sequential read (a file read in order, or files read in the order
	// of the layer) reads the next span ahead.
	sequential := l.continues(uoff, uoff+int64(len(p)))
	// need is how much of span i the read needs decoded: all of it but
	// for the last, which is decoded only up to the chunk that ends the
	// read (a sequential read: a little further), on average half the
	// inflation for a file opened at container start; a later read
	// further on continues the decoder from there.
	need := func(i int) int64 {
		s, end := l.bounds[i], l.bounds[i+1]
		if i < last {
			return end - s
		}
		to := uoff + int64(len(p))
		if sequential {
			to += seqDecodeAhead
		}
		to = max(to, upto)
		return min(end, (to+l.chunk-1)/l.chunk*l.chunk) - s
	}
	// Start the spans after the first in the background: a read across
	// several spans decodes them in parallel.
	for i := first + 1; i <= last; i++ {
		e.prefetch(l, i, need(i), false)
	}
	for i := first; i <= last; i++ {
		s, end := l.bounds[i], l.bounds[i+1]
		b, err := e.span(ctx, l, i, need(i))
		if err != nil {
			return err
		}
		lo, hi := max(s, uoff), min(end, uoff+int64(len(p)))
		copy(p[lo-uoff:hi-uoff], b[lo-s:hi-s])
	}
	if sequential {
		e.readAhead(l, last)
	}
	return nil
}

// readAhead fetches the spans after span last in the background: ReadAhead
// of them, or (ReadAhead 0) as many as hold ReadAheadBytes.
func (e *Engine) readAhead(l *layer, last int) {
	var ahead int64
	for i := last + 1; i < l.spans() && e.opts.ReadAhead >= 0; i++ {
		if n := i - last; e.opts.ReadAhead > 0 && n > e.opts.ReadAhead || e.opts.ReadAhead == 0 && ahead >= ReadAheadBytes {
			return
		}
		size := l.bounds[i+1] - l.bounds[i]
		e.prefetch(l, i, size, true)
		ahead += size
	}
}

// prefetch fetches the first want bytes of span i in the background unless
// they are cached or being fetched; optional fetches are skipped when all
// fetch slots are busy.
func (e *Engine) prefetch(l *layer, i int, want int64, optional bool) {
	k := spanKey{l.digest, i}
	e.mu.Lock()
	el, cached := e.byKey[k]
	cached = cached && int64(len(el.Value.(*entry).b)) >= want
	_, busy := e.inflight[k]
	e.mu.Unlock()
	if cached || busy || e.ctx.Err() != nil {
		return
	}
	if optional && len(e.sem) >= cap(e.sem) {
		return
	}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		if e.ctx.Err() == nil {
			e.span(e.ctx, l, i, want) // the error is logged by fetch; a read retries
		}
	}()
}

// span returns at least the first need bytes of span i of l: from the
// memory cache, or from the one fetch of it in flight, or fetched now (a
// prefix in the cache is continued from where its decoder stopped).
func (e *Engine) span(ctx context.Context, l *layer, i int, need int64) ([]byte, error) {
	k := spanKey{l.digest, i}
	for {
		e.mu.Lock()
		want := need
		if el, ok := e.byKey[k]; ok {
			b := el.Value.(*entry).b
			if int64(len(b)) >= need {
				e.lru.MoveToFront(el)
				e.mu.Unlock()
				e.hits.Add(1)
				return b, nil
			}
		}
		c, ok := e.inflight[k]
		if !ok {
			c = &call{done: make(chan struct{}), want: want}
			e.inflight[k] = c
			e.bg.Add(1)
			go e.fetch(l, i, k, c)
		}
		e.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil || int64(len(c.b)) >= need {
			return c.b, c.err
		}
		// The fetch in flight was of a shorter prefix: go again.
	}
}

// fetch produces the first c.want bytes of span i (from the disk cache or
// the source) and completes c. It runs on the engine's context with the
// fetch timeout, so that a reader giving up does not fail the others
// waiting for the same span.
func (e *Engine) fetch(l *layer, i int, k spanKey, c *call) {
	defer e.bg.Done()
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.FetchTimeout)
	defer cancel()
	full := l.bounds[i+1] - l.bounds[i]
	// A prefix in the cache is continued with its decoder: take it out of
	// the cache while the decoder runs.
	var prev *entry
	e.mu.Lock()
	if el, ok := e.byKey[k]; ok {
		if en := el.Value.(*entry); en.c != nil && int64(len(en.b)) < c.want {
			e.lru.Remove(el)
			delete(e.byKey, k)
			e.cached -= int64(cap(en.b))
			prev = en
		}
	}
	e.mu.Unlock()
	var b []byte
	var co *cont
	var err error
	if prev == nil {
		b, err = e.loadDisk(l, i)
	}
	if b == nil && err == nil {
		select {
		case e.sem <- struct{}{}:
			switch {
			case ctx.Err() != nil:
				if prev != nil {
					prev.c.close()
				}
				err = ctx.Err()
			case prev != nil:
				b, co, err = l.extend(ctx, i, prev.b, prev.c, c.want)
			default:
				e.misses.Add(1)
				b, co, err = l.produce(ctx, e.src, i, c.want, &e.inflated, &e.fetched)
			}
			<-e.sem
		case <-ctx.Done():
			if prev != nil {
				prev.c.close()
			}
			err = ctx.Err()
		}
		if err == nil && int64(len(b)) == full {
			e.storeDisk(l, i, b)
		}
	} else if err == nil {
		e.hits.Add(1)
	}
	if err != nil {
		err = fmt.Errorf("layer %s, span at uncompressed offset %d: %w", l.digest, l.bounds[i], err)
		if e.ctx.Err() == nil { // not a read-ahead stopped by Close
			e.logf("ociclip: read failed: %v", err)
		}
	}
	c.b, c.err = b, err
	e.mu.Lock()
	delete(e.inflight, k)
	if err == nil {
		e.insert(k, b, co)
	}
	e.mu.Unlock()
	close(c.done)
}

// insert adds a span (or a prefix of it, with its decoder c) to the LRU
// and evicts the least recently used spans beyond the budget; a span
// counts for its whole size. e.mu is held.
func (e *Engine) insert(k spanKey, b []byte, c *cont) {
	if e.opts.CacheSize < 0 || int64(cap(b)) > e.opts.CacheSize || e.ctx.Err() != nil {
		c.close()
		return
	}
	if el, ok := e.byKey[k]; ok {
		// Another fetch of the span finished first: keep the longer.
		old := el.Value.(*entry)
		if len(old.b) >= len(b) {
			c.close()
			return
		}
		old.c.close()
		e.cached += int64(cap(b) - cap(old.b))
		old.b, old.c = b, c
		e.lru.MoveToFront(el)
	} else {
		e.byKey[k] = e.lru.PushFront(&entry{k, b, c})
		e.cached += int64(cap(b))
	}
	for e.cached > e.opts.CacheSize {
		el := e.lru.Back()
		en := el.Value.(*entry)
		e.lru.Remove(el)
		delete(e.byKey, en.k)
		en.c.close()
		e.cached -= int64(cap(en.b))
	}
}

// wholeOf returns layer l inflated into a file, streaming it once on first
// use (one caller streams, the others wait for it).
func (e *Engine) wholeOf(ctx context.Context, l *layer) (*wholeLayer, error) {
	l.wholeOnce.Lock()
	defer l.wholeOnce.Unlock()
	if l.whole != nil {
		return l.whole, nil
	}
	e.logf("ociclip: layer %s is read whole once and kept on disk: %s", l.digest, l.why)
	ctx, cancel := context.WithTimeout(ctx, 10*e.opts.FetchTimeout)
	defer cancel()
	w, err := l.loadWhole(ctx, e.src, e.opts.CacheDir, &e.inflated, &e.fetched)
	if err != nil {
		err = fmt.Errorf("layer %s, read whole: %w", l.digest, err)
		e.logf("ociclip: read failed: %v", err)
		return nil, err
	}
	l.whole = w
	return w, nil
}
