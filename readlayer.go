package ociclip

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/layerz"
)

// layerAccess is the random-access state of one layer: its blob, its
// compression and where decompression can start.
type layerAccess struct {
	digest string
	comp   layerz.Compression
	blob   io.ReaderAt
	size   int64
	ext    *archive.LayerExtension
	points []layerz.ResumePoint // sorted by UOff (the extension's, not a copy)
	frames []layerz.ZstdFrame   // sorted by UOff
}

// layer returns (and caches) random-access state for a layer.
func (r *Reader) layer(d string) (*layerAccess, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if la := r.layers[d]; la != nil {
		return la, nil
	}
	blob, size, err := r.blobs.OpenLayer(d)
	if err != nil {
		return nil, err
	}
	la := &layerAccess{digest: d, blob: blob, size: size, comp: layerz.None}
	if r.a.Extension != nil {
		for i := range r.a.Extension.Layers {
			if r.a.Extension.Layers[i].Digest == d {
				la.ext = &r.a.Extension.Layers[i]
			}
		}
	}
	st := &r.a.Storage
	switch {
	case la.ext != nil:
		la.comp, _ = layerz.ParseCompression(la.ext.Compression)
	case st.GzipIdxByLayer[d] != nil:
		la.comp = layerz.Gzip
	case st.ZstdIdxByLayer[d] != nil:
		la.comp = layerz.Zstd
	}
	if la.ext != nil && la.ext.Size != size {
		return nil, fmt.Errorf("%w: layer %s is %d bytes, it was %d when indexed", ErrVerify, d, size, la.ext.Size)
	}
	if la.ext != nil {
		la.points = la.ext.Points
	}
	la.frames = archive.LayerFrames(st, d)
	if la.comp == layerz.Zstd && len(la.frames) == 0 {
		return nil, fmt.Errorf("%w: zstd layer %s has no frame index", ErrVerify, d)
	}
	r.layers[d] = la
	return la, nil
}

// checkRange fails with ErrVerify when [uoff, uoff+n) is not inside the
// layer's uncompressed stream, as far as its length is known (recorded in
// the extension, or the blob's size for an uncompressed layer).
func (la *layerAccess) checkRange(uoff, n int64) error {
	size := int64(-1)
	switch {
	case la.ext != nil:
		size = la.ext.USize
	case la.comp == layerz.None:
		size = la.size
	}
	if uoff < 0 || n < 0 || size >= 0 && (uoff > size || n > size-uoff) {
		return fmt.Errorf("%w: layer %s: bytes %d+%d outside the %d-byte uncompressed stream", ErrVerify, la.digest, uoff, n, size)
	}
	return nil
}

// chunkSpan widens [start, end) of the uncompressed stream to whole checksum
// chunks when the layer has chunk checksums.
func (la *layerAccess) chunkSpan(start, end int64) (int64, int64) {
	if la.ext == nil || la.ext.ChunkSize <= 0 || len(la.ext.ChunkCRCs) == 0 {
		return start, end
	}
	cs := la.ext.ChunkSize
	s := start / cs * cs
	e := (end + cs - 1) / cs * cs
	if la.ext.USize > 0 && e > la.ext.USize {
		e = la.ext.USize
	}
	return s, e
}

// readLayer fills want with the uncompressed layer bytes at uoff.
func (r *Reader) readLayer(la *layerAccess, want []byte, uoff int64) error {
	start, end := la.chunkSpan(uoff, uoff+int64(len(want)))
	var src io.Reader
	var srcOff int64 // uncompressed offset of src's first byte
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	switch la.comp {
	case layerz.None:
		src, srcOff = io.NewSectionReader(la.blob, start, la.size-start), start
	case layerz.Gzip:
		var rp layerz.ResumePoint
		if i := sort.Search(len(la.points), func(i int) bool { return la.points[i].UOff > start }) - 1; i >= 0 {
			rp = la.points[i]
		}
		rc, err := layerz.OpenAt(la.blob, la.size, rp)
		if err != nil {
			return err
		}
		closers = append(closers, rc)
		src, srcOff = &countReader{r: rc, n: &r.inflated}, rp.UOff
	case layerz.Zstd:
		i := sort.Search(len(la.frames), func(i int) bool { return la.frames[i].UOff > start }) - 1
		if i < 0 {
			return fmt.Errorf("%w: offset %d before the first zstd frame", ErrVerify, start)
		}
		srcOff = la.frames[i].UOff
		fs := &frameSeq{blob: la.blob, frames: la.frames[i:], end: end}
		closers = append(closers, fs)
		src = &countReader{r: fs, n: &r.inflated}
	}
	if _, err := io.CopyN(io.Discard, src, start-srcOff); err != nil {
		return fmt.Errorf("%w: skipping to offset %d: %v", ErrVerify, start, err)
	}
	return la.copyVerified(src, start, end, want, uoff)
}

// copyVerified reads [start, end) from src, checks each whole checksum chunk
// and copies the bytes at [uoff, uoff+len(want)) into want.
func (la *layerAccess) copyVerified(src io.Reader, start, end int64, want []byte, uoff int64) error {
	var cs int64 = 1 << 16
	check := la.ext != nil && la.ext.ChunkSize > 0 && len(la.ext.ChunkCRCs) > 0
	if check {
		cs = la.ext.ChunkSize
	}
	buf := make([]byte, cs)
	for pos := start; pos < end; {
		n := cs - pos%cs
		if n > end-pos {
			n = end - pos
		}
		chunk := buf[:n]
		if _, err := io.ReadFull(src, chunk); err != nil {
			return fmt.Errorf("%w: reading layer %s at %d: %v", ErrVerify, la.digest, pos, err)
		}
		if check {
			idx := pos / cs
			if idx >= int64(len(la.ext.ChunkCRCs)) {
				return fmt.Errorf("%w: layer %s: offset %d beyond the indexed stream", ErrVerify, la.digest, pos)
			}
			if got := layerz.CRC32C(chunk); got != la.ext.ChunkCRCs[idx] {
				return fmt.Errorf("%w: layer %s chunk %d (bytes %d-%d): crc32c %08x, indexed %08x", ErrVerify, la.digest, idx, pos, pos+n, got, la.ext.ChunkCRCs[idx])
			}
		}
		// Copy the overlap of [pos, pos+n) with [uoff, uoff+len(want)).
		lo, hi := max(pos, uoff), min(pos+n, uoff+int64(len(want)))
		if lo < hi {
			copy(want[lo-uoff:hi-uoff], chunk[lo-pos:hi-pos])
		}
		pos += n
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
