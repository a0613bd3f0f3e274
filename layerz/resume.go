package layerz

import (
	"bufio"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// MaxWindow is the deflate window size: the most a resume point keeps.
const MaxWindow = 32 << 10

// OpenAt returns the uncompressed stream of a gzip layer blob from rp.UOff
// on, inflating from the resume point rp (as recorded by tarindex); the
// zero ResumePoint means the start of the blob. Reading continues across
// gzip member boundaries to the end of the blob; every member read from its
// start has its CRC32 and ISIZE verified (the member rp is inside cannot be:
// its first bytes are not read). Structural errors (an invalid resume point,
// invalid deflate data, a truncated stream, a bad trailer or trailing
// garbage) wrap ErrCorrupt; a wrong window yields wrong bytes that the
// caller must detect by verifying content.
func OpenAt(blob io.ReaderAt, blobSize int64, rp ResumePoint) (io.ReadCloser, error) {
	switch {
	case blobSize < 0:
		return nil, corruptf("gzip: negative blob size")
	case rp.COff < 0 || rp.COff >= blobSize && !isZeroRP(rp):
		return nil, corruptf("gzip: resume point offset %d outside the blob (%d bytes)", rp.COff, blobSize)
	case rp.BitOffset > 7:
		return nil, corruptf("gzip: resume point bit offset %d", rp.BitOffset)
	case rp.UOff < 0 || rp.MemberStart < 0 || rp.MemberStart > rp.COff:
		return nil, corruptf("gzip: invalid resume point (UOff %d, MemberStart %d, COff %d)", rp.UOff, rp.MemberStart, rp.COff)
	}
	window, err := rp.Window()
	if err != nil {
		return nil, err
	}
	cr := &CountingReader{R: io.NewSectionReader(blob, rp.COff, blobSize-rp.COff)}
	g := &GzipReader{cr: cr, br: bufio.NewReaderSize(cr, BlobBufSize), base: rp.COff, uoff: rp.UOff}
	if isZeroRP(rp) {
		return io.NopCloser(g), nil
	}
	g.members = 1
	g.memberC = rp.MemberStart
	g.verify = false
	g.fr = flate.NewReaderOpts(g.br, flate.WithResumeFrom(flate.InflateCheckpoint{
		CompressedOffset:   rp.COff,
		UncompressedOffset: rp.UOff,
		BitOffset:          rp.BitOffset,
		Window:             window,
	}))
	return io.NopCloser(g), nil
}

func isZeroRP(rp ResumePoint) bool {
	return rp.COff == 0 && rp.UOff == 0 && rp.BitOffset == 0 && len(rp.ZWindow) == 0 && rp.MemberStart == 0
}

// OpenFrame returns the decompressed content of one zstd frame of a layer
// blob (as recorded by tarindex). Structural errors, and a frame whose
// content is not f.ULen bytes long, wrap ErrCorrupt. Close releases the
// decoder.
func OpenFrame(blob io.ReaderAt, f ZstdFrame) (io.ReadCloser, error) {
	if f.COff < 0 || f.CLen <= 0 || f.ULen < 0 || f.UOff < 0 {
		return nil, corruptf("zstd: invalid frame entry %+v", f)
	}
	dec, err := NewZstdDecoder()
	if err == nil {
		err = dec.Reset(io.NewSectionReader(blob, f.COff, f.CLen))
	}
	if err != nil {
		if dec != nil {
			dec.Close()
		}
		return nil, zstdErr(err, f.COff)
	}
	return &frameReader{dec: dec, f: f}, nil
}

// frameReader checks the length of a frame's content.
type frameReader struct {
	dec *zstd.Decoder
	f   ZstdFrame
	n   int64
	err error
}

func (r *frameReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.dec.Read(p)
	r.n += int64(n)
	switch {
	case r.n > r.f.ULen:
		err = corruptf("zstd: frame at blob offset %d holds more than %d bytes", r.f.COff, r.f.ULen)
	case err == io.EOF && r.n != r.f.ULen:
		err = corruptf("zstd: frame at blob offset %d holds %d bytes, not %d", r.f.COff, r.n, r.f.ULen)
	case err != nil && err != io.EOF:
		err = zstdErr(err, r.f.COff)
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

func (r *frameReader) Close() error {
	r.dec.Close()
	if r.err == nil || r.err == io.EOF {
		return nil
	}
	return fmt.Errorf("layerz: %w", r.err)
}
