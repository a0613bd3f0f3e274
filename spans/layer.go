package spans

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/layerz"
)

// defaultChunk is the alignment of spans of layers without chunk checksums.
const defaultChunk = 64 << 10

// plainSpan is the span size of uncompressed layers.
const plainSpan = 1 << 20

// blobMargin is how far past the compressed byte a gzip span's data ends in
// its fetch reaches: the inflater decodes up to a window (32 KiB) of output
// ahead of what is read from it, so it reads on past the block that ends
// the span (fetched extends further if it needs more).
const blobMargin = 32 << 10

// layer is what the engine knows of one layer: its compression, sizes, the
// checkpoints and frames it can start decoding at, and its spans.
type layer struct {
	digest string
	comp   layerz.Compression
	size   int64 // compressed blob size
	usize  int64 // uncompressed size
	chunk  int64 // checksum chunk size (alignment of spans)
	crcs   []uint32
	points []layerz.ResumePoint // gzip, sorted by UOff
	frames []layerz.ZstdFrame   // zstd, sorted by UOff

	// bounds[i] is the start of span i, bounds[len-1] the end of the
	// stream; every start but the first is a multiple of chunk. nil: the
	// layer is read whole once (whole).
	bounds []int64
	why    string // why the layer is read whole

	whole     *wholeLayer
	wholeOnce sync.Mutex

	// ends are the last reads of the layer and where their sequential
	// runs started (for read-ahead).
	endsMu sync.Mutex
	ends   [8]run
	endsN  int
}

// run is a read and the start of the sequential run it continues.
type run struct{ start, end int64 }

// layerState builds the layer's state from the archive and the blob size.
func newLayer(a *archive.Archive, d string, size int64, minSpan, maxSpan int64) (*layer, error) {
	l := &layer{digest: d, size: size, usize: -1, chunk: defaultChunk, comp: layerz.None}
	var ext *archive.LayerExtension
	if a.Extension != nil {
		for i := range a.Extension.Layers {
			if a.Extension.Layers[i].Digest == d {
				ext = &a.Extension.Layers[i]
			}
		}
	}
	st := &a.Storage
	switch {
	case ext != nil:
		l.comp, _ = layerz.ParseCompression(ext.Compression)
	case st.GzipIdxByLayer[d] != nil:
		l.comp = layerz.Gzip
	case st.ZstdIdxByLayer[d] != nil:
		l.comp = layerz.Zstd
	}
	if ext != nil {
		if ext.Size != size {
			return nil, fmt.Errorf("%w: layer %s is %d bytes, it was %d when indexed (changed blob)", ErrVerify, d, size, ext.Size)
		}
		l.usize = ext.USize
		l.points = ext.Points
		if ext.ChunkSize > 0 && len(ext.ChunkCRCs) > 0 {
			l.chunk, l.crcs = ext.ChunkSize, ext.ChunkCRCs
		}
	}
	l.frames = archive.LayerFrames(st, d)
	switch l.comp {
	case layerz.None:
		if l.usize < 0 {
			l.usize = size
		}
		if l.usize != size {
			return nil, fmt.Errorf("%w: uncompressed layer %s is %d bytes, indexed as %d", ErrVerify, d, size, l.usize)
		}
		step := (plainSpan + l.chunk - 1) / l.chunk * l.chunk
		for s := int64(0); s < l.usize; s += step {
			l.bounds = append(l.bounds, s)
		}
		l.bounds = append(l.bounds, l.usize)
	case layerz.Zstd:
		if len(l.frames) == 0 {
			return nil, fmt.Errorf("%w: zstd layer %s has no frame index", ErrVerify, d)
		}
		if l.usize < 0 {
			last := l.frames[len(l.frames)-1]
			l.usize = last.UOff + last.ULen
		}
		starts := make([]int64, len(l.frames))
		for i, f := range l.frames {
			starts[i] = f.UOff
		}
		l.plan(starts, minSpan, maxSpan)
	case layerz.Gzip:
		switch {
		case l.usize < 0:
			l.why = "the archive has no ociclip index for it (clip's own archive?)"
		case len(l.points) == 0 && l.usize > maxSpan:
			l.why = "the archive has no resume points for it (indexed with --span-mib 0?)"
		default:
			starts := []int64{0}
			for _, p := range l.points {
				starts = append(starts, p.UOff)
			}
			l.plan(starts, minSpan, maxSpan)
		}
	}
	return l, nil
}

// plan sets the spans from the offsets decoding can start at: each span
// starts at the first chunk boundary at or after a start, so that it holds
// whole checksum chunks; a layer with a span longer than maxSpan is read
// whole instead.
func (l *layer) plan(starts []int64, minSpan, maxSpan int64) {
	b := []int64{0}
	for _, s := range starts {
		s = (s + l.chunk - 1) / l.chunk * l.chunk
		if s > b[len(b)-1] && s-b[len(b)-1] >= minSpan && s < l.usize {
			b = append(b, s)
		}
	}
	if l.usize > 0 {
		b = append(b, l.usize)
	}
	for i := 1; i < len(b); i++ {
		if b[i]-b[i-1] > maxSpan {
			l.why = fmt.Sprintf("a span between its checkpoints is %d MiB (more than %d MiB)", (b[i]-b[i-1])>>20, maxSpan>>20)
			return
		}
	}
	l.bounds = b
}

// spans returns the number of spans (0 for a layer read whole).
func (l *layer) spans() int {
	if len(l.bounds) < 2 {
		return 0
	}
	return len(l.bounds) - 1
}

// spanOf returns the span holding uncompressed offset u.
func (l *layer) spanOf(u int64) int {
	return sort.Search(len(l.bounds), func(i int) bool { return l.bounds[i] > u }) - 1
}

// checkRange fails with ErrVerify when [uoff, uoff+n) is not inside the
// layer's uncompressed stream (when its length is known).
func (l *layer) checkRange(uoff, n int64) error {
	if uoff < 0 || n < 0 || l.usize >= 0 && (uoff > l.usize || n > l.usize-uoff) {
		return fmt.Errorf("%w: layer %s: bytes %d+%d outside the %d-byte uncompressed stream", ErrVerify, l.digest, uoff, n, l.usize)
	}
	return nil
}

// cont is the decoder of a span decoded only in part, positioned where the
// prefix ends, so that a later read continues it instead of inflating again
// from the resume point.
type cont struct {
	r      io.Reader
	f      *fetched
	closer io.Closer
}

func (c *cont) close() {
	if c != nil && c.closer != nil {
		c.closer.Close()
	}
}

// produce fetches and decodes the first want bytes of span i (want is a
// multiple of the chunk size, or the whole span; uncompressed spans are
// always read whole), verifying its checksum chunks. The slice returned has
// the capacity of the whole span; for a prefix, the decoder to continue it
// is returned too.
func (l *layer) produce(ctx context.Context, src Source, i int, want int64, inflated, fetchedN *atomic.Int64) ([]byte, *cont, error) {
	s, end := l.bounds[i], l.bounds[i+1]
	e := end
	if want > 0 && want < end-s && l.comp != layerz.None {
		e = s + want
	}
	out := make([]byte, end-s)
	var c *cont
	switch l.comp {
	case layerz.None:
		b, err := fetchRange(ctx, src, l.digest, s, e-s)
		if err != nil {
			return nil, nil, err
		}
		fetchedN.Add(int64(len(b)))
		copy(out, b)
	case layerz.Gzip:
		var rp layerz.ResumePoint
		if j := sort.Search(len(l.points), func(j int) bool { return l.points[j].UOff > s }) - 1; j >= 0 {
			rp = l.points[j]
		}
		// The span ends at most a chunk after the last point before its
		// end: fetch to that point plus as many bytes as the rest could
		// take uncompressed, and never past the next point (fetched reads
		// on if the decoder needs more).
		hi := l.size
		next := sort.Search(len(l.points), func(j int) bool { return l.points[j].UOff >= e })
		if next < len(l.points) {
			hi = min(hi, l.points[next].COff+blobMargin)
		}
		if j := next - 1; j >= 0 && l.points[j].UOff > rp.UOff {
			hi = min(hi, l.points[j].COff+(e-l.points[j].UOff)+blobMargin)
		} else if next < len(l.points) && l.points[next].UOff > rp.UOff {
			// A prefix of the span: estimate its compressed end from the
			// span's ratio, a quarter more (fetched reads on if short).
			np := l.points[next]
			est := (np.COff - rp.COff) * (e - rp.UOff) / (np.UOff - rp.UOff)
			hi = min(hi, rp.COff+est+est/4+blobMargin)
		}
		lo := rp.COff
		if hi < lo {
			return nil, nil, fmt.Errorf("%w: layer %s: resume points out of order at %d", ErrVerify, l.digest, s)
		}
		b, err := fetchRange(ctx, src, l.digest, lo, hi-lo)
		if err != nil {
			return nil, nil, err
		}
		fetchedN.Add(int64(len(b)))
		blob := &fetched{ctx: ctx, src: src, digest: l.digest, size: l.size, base: lo, buf: b, n: fetchedN}
		rc, err := layerz.OpenAt(blob, l.size, rp)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrVerify, err)
		}
		c = &cont{r: &countReader{r: rc, n: inflated}, f: blob, closer: rc}
		if err := decodeInto(c.r, s-rp.UOff, out[:e-s]); err != nil {
			c.close()
			return nil, nil, fmt.Errorf("layer %s at %d: %w", l.digest, s, err)
		}
	case layerz.Zstd:
		j := sort.Search(len(l.frames), func(j int) bool { return l.frames[j].UOff > s }) - 1
		if j < 0 {
			return nil, nil, fmt.Errorf("%w: layer %s: offset %d before the first zstd frame", ErrVerify, l.digest, s)
		}
		k := sort.Search(len(l.frames), func(k int) bool { return l.frames[k].UOff >= e })
		kEnd := sort.Search(len(l.frames), func(k int) bool { return l.frames[k].UOff >= end })
		lo := l.frames[j].COff
		hi := lo
		for _, f := range l.frames[j:k] {
			hi = max(hi, f.COff+f.CLen)
		}
		if hi > l.size || hi <= lo {
			return nil, nil, fmt.Errorf("%w: layer %s: zstd frames at %d outside the %d-byte blob", ErrVerify, l.digest, lo, l.size)
		}
		b, err := fetchRange(ctx, src, l.digest, lo, hi-lo)
		if err != nil {
			return nil, nil, err
		}
		fetchedN.Add(int64(len(b)))
		blob := &fetched{ctx: ctx, src: src, digest: l.digest, size: l.size, base: lo, buf: b, n: fetchedN}
		fs := &frameSeq{blob: blob, frames: l.frames[j:kEnd], end: end}
		c = &cont{r: &countReader{r: fs, n: inflated}, f: blob, closer: fs}
		if err := decodeInto(c.r, s-l.frames[j].UOff, out[:e-s]); err != nil {
			c.close()
			return nil, nil, fmt.Errorf("layer %s at %d: %w", l.digest, s, err)
		}
	default:
		return nil, nil, fmt.Errorf("%w: layer %s: unknown compression", ErrVerify, l.digest)
	}
	if err := l.verify(out[:e-s], s); err != nil {
		c.close()
		return nil, nil, err
	}
	if e == end {
		c.close()
		c = nil
	}
	return out[:e-s], c, nil
}

// extend decodes span i on from its prefix b to want bytes with c, verifying
// the new chunks; c is closed once the span is whole.
func (l *layer) extend(ctx context.Context, i int, b []byte, c *cont, want int64) ([]byte, *cont, error) {
	s := l.bounds[i]
	n := int64(len(b))
	want = min(want, int64(cap(b)))
	c.f.ctx = ctx
	if _, err := io.ReadFull(c.r, b[n:want]); err != nil {
		c.close()
		if errorsIsFetch(err) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: layer %s at %d: %v", ErrVerify, l.digest, s+n, err)
	}
	b = b[:want]
	if err := l.verify(b[n:], s+n); err != nil {
		c.close()
		return nil, nil, err
	}
	if want == int64(cap(b)) {
		c.close()
		c = nil
	}
	return b, c, nil
}

// decodeInto skips skip bytes of r, then fills out.
func decodeInto(cr io.Reader, skip int64, out []byte) error {
	if skip < 0 {
		return fmt.Errorf("%w: decoding starts after the span", ErrVerify)
	}
	if _, err := io.CopyN(io.Discard, cr, skip); err != nil {
		return fmt.Errorf("%w: skipping %d bytes: %v", ErrVerify, skip, err)
	}
	if _, err := io.ReadFull(cr, out); err != nil {
		if errorsIsFetch(err) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	return nil
}

// verify checks the whole checksum chunks of b, the bytes at uncompressed
// offset s (a chunk boundary); a last partial chunk is checked only when it
// ends the stream.
func (l *layer) verify(b []byte, s int64) error {
	if len(l.crcs) == 0 {
		return nil
	}
	for pos := int64(0); pos < int64(len(b)); pos += l.chunk {
		end := min(pos+l.chunk, int64(len(b)))
		idx := (s + pos) / l.chunk
		if idx >= int64(len(l.crcs)) {
			return fmt.Errorf("%w: layer %s: offset %d beyond the indexed stream", ErrVerify, l.digest, s+pos)
		}
		if got := layerz.CRC32C(b[pos:end]); got != l.crcs[idx] {
			return fmt.Errorf("%w: layer %s chunk %d (bytes %d-%d): crc32c %08x, indexed %08x", ErrVerify, l.digest, idx, s+pos, s+end, got, l.crcs[idx])
		}
	}
	return nil
}

// countReader adds the bytes read to a shared counter.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// frameSeq reads the zstd frames that start before end one after the
// other, opening each only when the previous one is exhausted, so that a
// hostile frame index cannot make a read open thousands of decoders at once.
type frameSeq struct {
	blob   io.ReaderAt
	frames []layerz.ZstdFrame
	end    int64
	cur    io.ReadCloser
}

func (s *frameSeq) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			if len(s.frames) == 0 || s.frames[0].UOff >= s.end {
				return 0, io.EOF
			}
			fr, err := layerz.OpenFrame(s.blob, s.frames[0])
			if err != nil {
				return 0, err
			}
			s.cur, s.frames = fr, s.frames[1:]
		}
		n, err := s.cur.Read(p)
		if err == io.EOF {
			err = s.cur.Close()
			s.cur = nil
			if err != nil || n > 0 {
				return n, err
			}
			continue
		}
		return n, err
	}
}

func (s *frameSeq) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}

// continues records the read [uoff, end) and reports whether it ends a
// sequential run of at least seqMinRun bytes: reads each starting where
// one of the last reads of the layer ended (up to seqGap bytes later: a
// tar header or two between files read in layer order). FUSE sends a
// file's reads several at a time, so the last few ends count. A short run
// (a small file read whole, at container start) is not sequential: reading
// ahead of it would inflate bytes nobody asked for.
func (l *layer) continues(uoff, end int64) bool {
	l.endsMu.Lock()
	defer l.endsMu.Unlock()
	start := uoff
	for i := 0; i < min(l.endsN, len(l.ends)); i++ {
		if e := l.ends[i]; uoff >= e.end && uoff <= e.end+seqGap {
			start = min(start, e.start)
		}
	}
	l.ends[l.endsN%len(l.ends)] = run{start: start, end: end}
	l.endsN++
	return end-start >= seqMinRun
}
