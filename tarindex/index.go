package tarindex

import (
	"archive/tar"
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/layerz"
)

const (
	// chunkSize is the size of the buffers the decompressor fills; the
	// first ones are smaller (minChunkSize, doubling).
	chunkSize    = 512 << 10
	minChunkSize = 16 << 10
	// pipelineDepth is the number of chunk buffers in flight.
	pipelineDepth = 4
	// maxEndsPerChunk caps the deflate block ends attached to one chunk; a
	// chunk is handed over early when it has that many.
	maxEndsPerChunk = 4096
	// progressEvery is the compressed-input interval of Progress calls.
	progressEvery = 1 << 20
	// largeFile and largeFileGap are clip's large-file checkpoint rule: a
	// checkpoint before a regular file larger than largeFile when at least
	// largeFileGap bytes passed since the last one.
	largeFile    = 512 << 10
	largeFileGap = 512 << 10
)

// Pipeline modes (Options.mode).
const (
	modeDefault = iota
	modeSync    // one goroutine: inflate, hash and walk in turn
	modeAsync   // inflate on a second goroutine, hash and walk on the caller's
	modeHash    // inflate, hash (sha256 and chunk CRCs) and walk on three goroutines (plus the read-ahead, as in modeAsync)
)

// Index reads one layer blob from r to its end and indexes it: the tar
// entries with the offsets of their data in the uncompressed stream, the
// DiffID, the exact sizes, clip-form gzip checkpoints, resume points and
// zstd frames (see Result).
//
// The compression comes from opts.MediaType and must agree with the blob's
// magic bytes (ErrCompressionMismatch otherwise); with an empty media type it
// is detected. Errors wrap ErrCorrupt, ErrSparse, ErrUnsafePath, ErrLimit,
// ErrUnknownMediaType or ErrCompressionMismatch, or are ctx's error (checked
// between reads of the blob; Index returns only after it stopped reading r).
//
// A tar stream that ends cleanly at an entry boundary, with no or only one
// of the two zero end blocks, is accepted (archive/tar's behaviour); a stream
// that ends inside a header or inside an entry's data is ErrCorrupt. Any bytes
// after the tar end blocks are read, hashed and counted but not interpreted.
// Global PAX headers and entry types other than regular files ('0', '\x00',
// '7'), directories, symlinks, hard links, character and block devices and
// FIFOs are skipped.
func Index(ctx context.Context, r io.Reader, opts Options) (*Result, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	want, haveMT := layerz.Compression(0), opts.MediaType != ""
	if haveMT {
		var err error
		if want, err = layerz.ForMediaType(opts.MediaType); err != nil {
			return nil, err
		}
	}
	if opts.mode != modeSync {
		// The blob is read on its own goroutine (see readAhead).
		ra := layerz.NewReadAhead(r)
		defer ra.Stop()
		r = ra
	}
	cr := &layerz.CountingReader{R: r}
	br := bufio.NewReaderSize(cr, layerz.BlobBufSize)
	magic, err := br.Peek(layerz.SniffLen)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("tarindex: reading blob: %w", err)
	}
	got, ok := layerz.Sniff(magic)
	switch {
	case !haveMT:
		want = got
	case !ok && want != layerz.None:
		return nil, layerz.Corruptf("%s blob of %d bytes is too short", want, len(magic))
	case ok && got != want:
		return nil, fmt.Errorf("%w: media type %s says %s, the blob's magic bytes say %s", ErrCompressionMismatch, opts.MediaType, want, got)
	}

	ix := &indexer{opts: opts, lim: opts.Limits.Normalized()}
	p := &producer{ctx: ctx, cr: cr, maxU: ix.lim.MaxUncompressedBytes, hook: opts.blockEnd}
	ix.res.Compression = want
	switch want {
	case layerz.Gzip:
		span, small := opts.spans()
		p.candSpan = cmp.Or(small, span)
		p.gz = layerz.NewGzipReader(cr, br, p.onBlockEnd)
		p.src = p.gz
		ix.resolver = &cpResolver{}
		p.windows = make(chan []byte, windowBuffers)
		ix.placer = &rpPlacer{span: span, small: small, windows: p.windows}
	case layerz.Zstd:
		dec, err := layerz.NewZstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("tarindex: %w", err)
		}
		defer dec.Close()
		p.zs = layerz.NewZstdReader(cr, br, dec)
		p.src = p.zs
	default:
		p.src = br
	}
	if err := ix.run(ctx, p); err != nil {
		return nil, err
	}
	res := &ix.res
	res.CompressedSize = cr.N
	if p.zs != nil {
		res.ZstdFrames = p.zs.Frames()
	}
	return res, nil
}

// chunk is a buffer of uncompressed bytes handed from the decompressor to
// the tar walker, with the deflate block ends reported while filling it.
type chunk struct {
	buf  []byte
	n    int
	ends []layerz.BlockEnd
	// cands are the candidate resume points found while filling it.
	cands []candidate
	cin   int64 // blob bytes read when the chunk was complete
	err   error // io.EOF after the last byte, or what stopped the decompressor
	// refs counts the stages still using the chunk (modeHash: the hasher
	// and the walker); the last one to release it returns it to the pool.
	refs atomic.Int32
}

// producer decompresses the blob into chunks.
type producer struct {
	ctx   context.Context
	src   io.Reader
	cr    *layerz.CountingReader
	gz    *layerz.GzipReader
	zs    *layerz.ZstdReader
	cur   *chunk
	total int64
	maxU  int64
	// bufSize is the size of the chunk buffers to allocate.
	bufSize int
	hook    func(be layerz.BlockEnd, drift int64)
	// candidate resume points: one at the first block end at least
	// candSpan after the previous candidate (0: none)
	candSpan int64
	lastCand int64
	windows  chan []byte // window buffers to reuse (from the placer)
}

// fill fills c from the decompressor.
func (p *producer) fill(c *chunk) {
	// Buffers start small and grow while the stream goes on, so that
	// the many tiny layers of an image cost little memory.
	if p.bufSize == 0 {
		p.bufSize = minChunkSize
	}
	if len(c.buf) < p.bufSize {
		c.buf = make([]byte, p.bufSize)
	}
	c.n, c.ends, c.cands, c.err = 0, c.ends[:0], c.cands[:0], nil
	p.cur = c
	if err := ctxErr(p.ctx); err != nil {
		c.err = err
		return
	}
	for c.n < len(c.buf) && len(c.ends) < maxEndsPerChunk {
		n, err := p.src.Read(c.buf[c.n:])
		c.n += n
		p.total += int64(n)
		if p.total > p.maxU {
			c.err = limitErr("MaxUncompressedBytes", p.maxU, "uncompressed stream is longer")
			break
		}
		if err != nil {
			c.err = err
			break
		}
	}
	c.cin = p.cr.N
	if c.n == len(c.buf) && p.bufSize < chunkSize {
		p.bufSize *= 2
	}
}

// onBlockEnd records a deflate block end (called by flate via gzReader).
func (p *producer) onBlockEnd(be layerz.BlockEnd, cp *flate.InflateCheckpoint) {
	if p.hook != nil {
		p.hook(be, p.gz.Drift())
	}
	// Several block ends at the same uncompressed offset (empty stored
	// blocks of sync flushes): keep the latest only.
	if n := len(p.cur.ends); n > 0 && p.cur.ends[n-1].UOff == be.UOff {
		p.cur.ends[n-1] = be
	} else {
		p.cur.ends = append(p.cur.ends, be)
	}
	if p.candSpan > 0 && !be.Final && be.UOff-p.lastCand >= p.candSpan {
		var w []byte
		select {
		case w = <-p.windows:
		default:
			w = make([]byte, 0, layerz.MaxWindow)
		}
		p.cur.cands = append(p.cur.cands, candidate{
			rp: layerz.ResumePoint{
				COff:        be.COff,
				BitOffset:   be.Bit,
				UOff:        be.UOff,
				MemberStart: p.gz.MemberStart(),
			},
			window: append(w[:0], cp.Window...),
		})
		p.lastCand = be.UOff
	}
}

// ustream is the uncompressed stream as the tar reader sees it. It hashes
// every chunk when it arrives and implements forward Seek (which
// archive/tar uses to skip file data) without copying.
type ustream struct {
	cur     []byte
	c       *chunk
	pos     int64 // bytes handed to the tar reader or skipped
	err     error // returned once cur is drained
	next    func() *chunk
	release func(*chunk)
	// h and crcs hash every chunk in load, unless another goroutine does
	// (hashed is set).
	h      hash.Hash
	crcs   layerz.ChunkCRCs
	hashed bool
	res    *cpResolver
	rp     *rpPlacer
	// progress
	progress func(Progress)
	lastProg int64
	cin      int64
	entries  *entryList
}

func (u *ustream) load() {
	if u.c != nil {
		u.release(u.c)
		u.c = nil
	}
	c := u.next()
	if c.n > 0 && !u.hashed {
		u.h.Write(c.buf[:c.n])
		u.crcs.Write(c.buf[:c.n])
	}
	if u.res != nil {
		u.res.advance(u.pos)
		for _, e := range c.ends {
			u.res.ingest(e)
		}
	}
	if u.rp != nil && len(c.cands) > 0 {
		u.rp.add(c.cands)
	}
	u.cur, u.c = c.buf[:c.n], c
	u.err = c.err
	if c.cin > u.cin {
		u.cin = c.cin
	}
	if u.progress != nil && u.cin-u.lastProg >= progressEvery {
		u.lastProg = u.cin
		u.progress(Progress{CompressedBytes: u.cin, UncompressedBytes: u.pos, Entries: u.entries.n})
	}
}

// Read implements io.Reader.
func (u *ustream) Read(p []byte) (int, error) {
	for len(u.cur) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		u.load()
	}
	n := copy(p, u.cur)
	u.cur = u.cur[n:]
	u.pos += int64(n)
	return n, nil
}

// Seek skips forward (whence io.SeekCurrent, offset >= 0 only). At the end
// of the stream it stops short; the tar reader's next read reports why.
func (u *ustream) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return u.pos, errors.New("tarindex: unsupported seek")
	}
	for offset > 0 {
		if len(u.cur) == 0 {
			if u.err != nil {
				break
			}
			u.load()
			continue
		}
		k := min(offset, int64(len(u.cur)))
		u.cur = u.cur[k:]
		u.pos += k
		offset -= k
	}
	return u.pos, nil
}

// drain consumes the rest of the stream and returns nil at its clean end.
func (u *ustream) drain() error {
	for {
		u.pos += int64(len(u.cur))
		u.cur = nil
		if u.err != nil {
			if u.err == io.EOF {
				return nil
			}
			return u.err
		}
		u.load()
	}
}

// cpResolver places clip-form checkpoints on deflate block ends. The tar
// walker requests a checkpoint at an uncompressed position P (clip's rules);
// the checkpoint is the latest block end at or before P. Block ends arrive
// with the chunks, in order; a request is resolved as soon as a block end
// after P is known (or at the end of the stream), so the result does not
// depend on how far the decompressor ran ahead.
type cpResolver struct {
	q       []layerz.BlockEnd // block ends after the walker's position, in order
	prev    layerz.BlockEnd   // latest block end at or before the walker's position
	hasPrev bool
	pending []int64 // requested positions not yet resolved
	out     []Checkpoint
}

func (r *cpResolver) emit() {
	if !r.hasPrev || r.prev.UOff <= 0 {
		return
	}
	if n := len(r.out); n > 0 && r.out[n-1].UOff >= r.prev.UOff {
		return
	}
	r.out = append(r.out, Checkpoint{COff: r.prev.COff, UOff: r.prev.UOff})
}

func (r *cpResolver) ingest(e layerz.BlockEnd) {
	for len(r.pending) > 0 && r.pending[0] < e.UOff {
		r.emit()
		r.pending = r.pending[1:]
	}
	if len(r.pending) > 0 {
		r.prev, r.hasPrev = e, true
		return
	}
	r.q = append(r.q, e)
}

// advance moves block ends at or before pos out of the queue.
func (r *cpResolver) advance(pos int64) {
	i := 0
	for i < len(r.q) && r.q[i].UOff <= pos {
		r.prev, r.hasPrev = r.q[i], true
		i++
	}
	if i > 0 {
		r.q = r.q[:copy(r.q, r.q[i:])]
	}
}

func (r *cpResolver) request(pos int64) {
	if len(r.pending) > 0 {
		r.pending = append(r.pending, pos)
		return
	}
	r.advance(pos)
	if len(r.q) > 0 {
		r.emit()
		return
	}
	r.pending = append(r.pending, pos)
}

// finish resolves the remaining requests at the end of the stream.
func (r *cpResolver) finish() {
	for range r.pending {
		r.emit()
	}
	r.pending = nil
}

// rpPlacer keeps the candidate resume points that Options' spacing rules
// select: a candidate at least span after the last point kept, or one at
// which SmallFileSpanFiles files have started since it (candidates of such
// layers are small apart). Candidates arrive with the chunks, in order; the
// walker notes every entry right after its header. A candidate at u is
// decided once every file starting at or before u is known (an entry's data
// reaches u, or the stream ended), so that the result does not depend on
// how far the decompressor ran ahead of the walker.
type rpPlacer struct {
	span, small int64 // small 0: a point every span
	lastKept    int64
	known       int64   // every file with data at or before known is noted
	starts      []int64 // data offsets of the files noted after lastKept
	pending     []candidate
	out         []layerz.ResumePoint
	wc          layerz.WindowCompressor
	windows     chan []byte // decided candidates' window buffers, for reuse
}

// candidate is a block end where a resume point may be placed, with its
// window (a buffer that returns to the producer once decided).
type candidate struct {
	rp     layerz.ResumePoint
	window []byte
}

// windowBuffers is how many window buffers the placer hands back to the
// producer for reuse (the candidates in flight between them, at most a few
// per chunk of the pipeline).
const windowBuffers = 64

// add queues candidates and decides those it can.
func (r *rpPlacer) add(cands []candidate) {
	r.pending = append(r.pending, cands...)
	r.decide(r.known)
}

// note records an entry whose data is the n bytes at uncompressed offset
// off (n > 0: a regular file with data) and decides the candidates it
// settles.
func (r *rpPlacer) note(off, n int64) {
	if r.small > 0 && n > 0 {
		r.starts = append(r.starts, off)
	}
	r.known = off + n
	r.decide(r.known)
}

// finish decides the remaining candidates at the end of the stream.
func (r *rpPlacer) finish() {
	r.decide(math.MaxInt64)
}

// decide decides the pending candidates at or before upto, in order.
func (r *rpPlacer) decide(upto int64) {
	i := 0
	for ; i < len(r.pending) && r.pending[i].rp.UOff <= upto; i++ {
		c := r.pending[i]
		u := c.rp.UOff
		files := sort.Search(len(r.starts), func(j int) bool { return r.starts[j] > u })
		if u-r.lastKept >= r.span || r.small > 0 && files >= SmallFileSpanFiles {
			c.rp.ZWindow = r.wc.Compress(c.window)
			r.out = append(r.out, c.rp)
			r.lastKept = u
			r.starts = r.starts[:copy(r.starts, r.starts[files:])]
		}
		select {
		case r.windows <- c.window:
		default:
		}
		r.pending[i] = candidate{}
	}
	if i > 0 {
		r.pending = r.pending[:copy(r.pending, r.pending[i:])]
	}
}

// entryList collects entries in blocks and hands them over as one slice of
// exactly the right length: appending to one slice would allocate (and
// copy) about five times the final size, since append grows large slices by
// 1.25x, and leave up to a quarter of it unused.
type entryList struct {
	blocks [][]Entry // full blocks
	cur    []Entry
	n      int
}

const (
	minEntryBlock = 64
	maxEntryBlock = 4096
)

func (l *entryList) add(e Entry) {
	if len(l.cur) == cap(l.cur) {
		size := minEntryBlock
		if c := cap(l.cur); c > 0 {
			l.blocks = append(l.blocks, l.cur)
			size = min(2*c, maxEntryBlock)
		}
		l.cur = make([]Entry, 0, size)
	}
	l.cur = append(l.cur, e)
	l.n++
}

// slice returns all entries in order (nil when there are none).
func (l *entryList) slice() []Entry {
	if len(l.blocks) == 0 {
		if len(l.cur) == 0 {
			return nil
		}
		return l.cur
	}
	out := make([]Entry, 0, l.n)
	for _, b := range l.blocks {
		out = append(out, b...)
	}
	out = append(out, l.cur...)
	l.blocks, l.cur = nil, nil
	return out
}

// indexer walks the tar stream.
type indexer struct {
	opts     Options
	lim      Limits
	res      Result
	entries  entryList
	resolver *cpResolver
	placer   *rpPlacer
}

func (ix *indexer) run(ctx context.Context, p *producer) error {
	u := &ustream{h: sha256.New(), res: ix.resolver, rp: ix.placer, progress: ix.opts.Progress, entries: &ix.entries}
	mode := ix.opts.mode
	if mode == modeDefault {
		mode = modeHash
	}
	if mode == modeSync {
		c := &chunk{}
		u.next = func() *chunk { p.fill(c); return c }
		u.release = func(*chunk) {}
		return ix.walk(u, nil)
	}
	pl := newPipeline(mode == modeHash)
	defer pl.stop()
	pl.start(func() { pl.produce(p) })
	if pl.hashq != nil {
		u.hashed = true
		pl.start(func() { pl.hash(u) })
	}
	u.next = func() *chunk {
		select {
		case c := <-pl.full:
			return c
		case <-ctx.Done():
			return &chunk{err: ctxErr(ctx)}
		}
	}
	u.release = func(c *chunk) {
		if c.buf != nil { // not the chunk that reports ctx's error
			pl.release(c)
		}
	}
	// The walker has read the whole stream; the hasher may still be busy
	// with the last chunks.
	waitHash := func() error {
		if pl.hashDone == nil {
			return nil
		}
		select {
		case <-pl.hashDone:
			return nil
		case <-ctx.Done():
			return ctxErr(ctx)
		}
	}
	return ix.walk(u, waitHash)
}

// pipeline hands chunks from the decompressing goroutine to the walker
// and, with a hasher, to a third goroutine that hashes every chunk (sha256
// for the DiffID, CRC-32C per 64 KiB) while the walker parses it; each chunk
// goes to both, and the last to release it returns it to free.
type pipeline struct {
	free, full, hashq chan *chunk
	hashDone, done    chan struct{}
	users             int32 // stages each chunk goes to
	wg                sync.WaitGroup
}

func newPipeline(withHasher bool) *pipeline {
	pl := &pipeline{
		free:  make(chan *chunk, pipelineDepth),
		full:  make(chan *chunk, pipelineDepth),
		done:  make(chan struct{}),
		users: 1,
	}
	for range pipelineDepth {
		pl.free <- &chunk{} // buffers are allocated on first use
	}
	if withHasher {
		pl.users = 2
		pl.hashq = make(chan *chunk, pipelineDepth)
		pl.hashDone = make(chan struct{})
	}
	return pl
}

// start runs fn on a goroutine that stop waits for.
func (pl *pipeline) start(fn func()) {
	pl.wg.Add(1)
	go func() {
		defer pl.wg.Done()
		fn()
	}()
}

// stop ends the goroutines and waits for them.
func (pl *pipeline) stop() {
	close(pl.done)
	pl.wg.Wait()
}

func (pl *pipeline) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		pl.free <- c // never blocks: free holds every chunk
	}
}

// produce fills free chunks from the decompressor until the stream ends.
func (pl *pipeline) produce(p *producer) {
	for {
		var c *chunk
		select {
		case c = <-pl.free:
		case <-pl.done:
			return
		}
		p.fill(c)
		c.refs.Store(pl.users)
		// Neither send blocks: both channels have room for every chunk.
		if pl.hashq != nil {
			pl.hashq <- c
		}
		pl.full <- c
		if c.err != nil {
			return
		}
	}
}

// hash hashes every chunk into u's sha256 and chunk CRCs.
func (pl *pipeline) hash(u *ustream) {
	for {
		var c *chunk
		select {
		case c = <-pl.hashq:
		case <-pl.done:
			return
		}
		if c.n > 0 {
			u.h.Write(c.buf[:c.n])
			u.crcs.Write(c.buf[:c.n])
		}
		last := c.err != nil
		pl.release(c)
		if last {
			close(pl.hashDone)
			return
		}
	}
}

// walk reads the tar stream to its end and fills ix.res.
// waitHash, when not nil, waits until another goroutine hashed the whole
// stream (u.h and u.crcs are complete).
func (ix *indexer) walk(u *ustream, waitHash func() error) error {
	tr := &tarReader{u: u}
	interval := ix.opts.checkpointInterval()
	var last int64 // nominal position of the last checkpoint (clip's lastCheckpoint)
	headers := 0
	for {
		hdr, err := tr.Next()
		if err == tar.ErrInsecurePath && hdr != nil {
			err = nil // checked below, by ociclip's own rules
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return ix.tarErr(u, err)
		}
		headers++
		if headers > ix.lim.MaxEntries {
			return limitErr("MaxEntries", int64(ix.lim.MaxEntries), "too many tar entries")
		}
		pos := u.pos
		e, keep, err := ix.entry(hdr, pos)
		if err != nil {
			return err
		}
		if ix.placer != nil {
			// Before anything more is read: the entry's data is the
			// e.Size bytes at pos for a regular file; the tar reader
			// reads none for the other types.
			var data int64
			if keep && e.Kind == KindFile {
				data = e.Size
			}
			ix.placer.note(pos, data)
		}
		if ix.resolver != nil && pos-last >= interval {
			ix.resolver.request(pos)
			last = pos
		}
		if !keep {
			continue
		}
		if ix.resolver != nil && e.Kind == KindFile && e.Size > largeFile && pos-last >= largeFileGap {
			ix.resolver.request(pos)
			last = pos
		}
		ix.entries.add(e)
	}
	if ix.resolver != nil && u.pos > last {
		ix.resolver.request(u.pos)
	}
	if err := u.drain(); err != nil {
		return err
	}
	if u.c != nil {
		u.release(u.c)
		u.c = nil
	}
	if waitHash != nil {
		if err := waitHash(); err != nil {
			return err
		}
	}
	if ix.resolver != nil {
		ix.resolver.finish()
		ix.res.GzipCheckpoints = ix.resolver.out
	}
	if ix.placer != nil {
		ix.placer.finish()
		ix.res.ResumePoints = ix.placer.out
	}
	ix.res.UncompressedSize = u.pos
	ix.res.DiffID = digest.NewDigestFromBytes(digest.SHA256, u.h.Sum(nil))
	ix.res.ChunkSize, ix.res.ChunkCRCs = layerz.ChunkSize, u.crcs.Finish()
	ix.res.Entries = ix.entries.slice()
	if u.progress != nil {
		u.progress(Progress{CompressedBytes: u.cin, UncompressedBytes: u.pos, Entries: len(ix.res.Entries)})
	}
	return nil
}

// tarErr explains an error of the tar reader: the decompressor's own error
// if it had one, else a corrupt tar stream.
func (ix *indexer) tarErr(u *ustream, err error) error {
	if u.err != nil && u.err != io.EOF {
		return u.err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return layerz.Corruptf("tar: stream ends inside a header or an entry's data (uncompressed offset %d)", u.pos)
	}
	return layerz.Corruptf("tar: %v (uncompressed offset %d)", err, u.pos)
}

// entry converts a tar header. keep is false for entries ociclip skips.
func (ix *indexer) entry(hdr *tar.Header, pos int64) (e Entry, keep bool, err error) {
	var kind EntryKind
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		kind = KindFile
	case tar.TypeDir:
		kind = KindDir
	case tar.TypeSymlink:
		kind = KindSymlink
	case tar.TypeLink:
		kind = KindHardlink
	case tar.TypeChar:
		kind = KindChar
	case tar.TypeBlock:
		kind = KindBlock
	case tar.TypeFifo:
		kind = KindFIFO
	case tar.TypeGNUSparse:
		return e, false, fmt.Errorf("%w: %q (GNU sparse entry)", ErrSparse, hdr.Name)
	default:
		return e, false, nil
	}
	if layerz.IsSparse(hdr) {
		return e, false, fmt.Errorf("%w: %q (PAX GNU.sparse.* records)", ErrSparse, hdr.Name)
	}
	if len(hdr.Name) > ix.lim.MaxPathLen {
		return e, false, limitErr("MaxPathLen", int64(ix.lim.MaxPathLen), fmt.Sprintf("entry name of %d bytes", len(hdr.Name)))
	}
	if len(hdr.Linkname) > ix.lim.MaxPathLen {
		return e, false, limitErr("MaxPathLen", int64(ix.lim.MaxPathLen), fmt.Sprintf("link target of %d bytes in %q", len(hdr.Linkname), hdr.Name))
	}
	if hdr.Name == "" {
		return e, false, layerz.Corruptf("tar: entry with an empty name at uncompressed offset %d", pos)
	}
	p, ok := cleanAbs(hdr.Name)
	if !ok {
		return e, false, fmt.Errorf("%w: entry %q", ErrUnsafePath, hdr.Name)
	}
	if hdr.Uid < 0 || hdr.Uid > math.MaxUint32 || hdr.Gid < 0 || hdr.Gid > math.MaxUint32 {
		return e, false, layerz.Corruptf("tar: %q: uid/gid %d/%d out of range", hdr.Name, hdr.Uid, hdr.Gid)
	}
	e = Entry{
		Path:       p,
		AbsName:    strings.HasPrefix(hdr.Name, "/"),
		Kind:       kind,
		Mode:       uint32(hdr.Mode & 07777),
		Uid:        uint32(hdr.Uid),
		Gid:        uint32(hdr.Gid),
		ModTime:    hdr.ModTime,
		AccessTime: hdr.AccessTime,
		ChangeTime: hdr.ChangeTime,
		Devmajor:   hdr.Devmajor,
		Devminor:   hdr.Devminor,
	}
	switch kind {
	case KindFile:
		if hdr.Size < 0 {
			return e, false, layerz.Corruptf("tar: %q: negative size", hdr.Name)
		}
		e.Size, e.Offset = hdr.Size, pos
	case KindSymlink:
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return e, false, fmt.Errorf("%w: symlink %q has a target with NUL", ErrUnsafePath, hdr.Name)
		}
		e.Linkname = hdr.Linkname
	case KindHardlink:
		if hdr.Linkname == "" {
			return e, false, layerz.Corruptf("tar: hard link %q without a target", hdr.Name)
		}
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return e, false, fmt.Errorf("%w: hard link %q has a target with NUL", ErrUnsafePath, hdr.Name)
		}
		// Verbatim: the merge resolves it inside the root as containerd
		// does (symlinked parents followed, ".." stopping at the root).
		e.Linkname = hdr.Linkname
	}
	return e, true, nil
}
