// Package layerz owns everything about the byte stream of one image layer:
// its compression (the one table of layer media types, magic-byte
// sniffing), the decoders (multi-member gzip with deflate block-end
// reports, zstd with frame boundaries), resume points and opening the
// uncompressed stream at one or at a zstd frame, chunk checksums, and the
// counting and read-ahead readers the decoders read through.
//
// It knows nothing of tar, overlays or clip: tarindex walks the stream and
// decides where to keep resume points, the archive stores them, and the
// root package's Reader reads files through them.
package layerz

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Sentinel errors; errors returned by this package wrap one of these where a
// caller might branch on the cause.
var (
	// ErrUnknownMediaType: the layer media type is not one ociclip reads.
	ErrUnknownMediaType = errors.New("unknown layer media type")
	// ErrCorrupt: the compressed stream or the tar stream is malformed or truncated.
	ErrCorrupt = errors.New("corrupt layer")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Corruptf returns an error wrapping ErrCorrupt with a formatted message,
// for callers that find a layer stream malformed themselves.
func Corruptf(format string, args ...any) error { return corruptf(format, args...) }

// ResumePoint is a resumable inflate checkpoint of a gzip layer: inflation
// can restart at the deflate block boundary at bit BitOffset of byte COff of
// the blob, with its window (the last up to 32 KiB of output before UOff) as
// the dictionary, and produce the uncompressed stream from UOff on.
//
// The field order is part of ociclip's archive format (the extension section
// gob-encodes this type): do not reorder.
type ResumePoint struct {
	COff      int64 // offset in the compressed blob of the byte holding the block's first bit
	BitOffset uint8 // 0-7: bits of that byte already consumed
	UOff      int64 // offset in the uncompressed stream
	// MemberStart is the blob offset of the gzip member this point is in
	// (so a reader knows where that member's header began).
	MemberStart int64
	// ZWindow is the window, the up to 32 KiB of output preceding UOff,
	// compressed as raw DEFLATE (WindowCompressor; about 12 KiB for
	// windows of text and binaries), so that the many points of a layer of
	// small files cost little in the archive and in the memory of its
	// readers. Window returns it inflated.
	ZWindow []byte
}

// ZstdFrame is one data frame of a zstd layer: CLen compressed bytes at
// blob offset COff that decode to ULen bytes at UOff of the uncompressed
// stream. Frames decode independently.
type ZstdFrame struct {
	COff int64
	CLen int64
	UOff int64
	ULen int64
}

// IsSparse reports whether a tar header describes a sparse file (GNU type
// 'S' or PAX GNU.sparse.* records), whose data is not one byte range of the
// stream.
func IsSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// NewReader returns the plain sequential uncompressed stream of a layer
// blob compressed with c, through standard decoders (klauspost's gzip, its
// zstd decoder with the MaxZstdWindow cap): no checkpoints, no frame
// tracking. It is what an independent replay of a layer uses.
func NewReader(blob io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(blob)
		if err != nil {
			return nil, corruptf("gzip: %v", err)
		}
		return zr, nil
	case Zstd:
		dec, err := NewZstdDecoder()
		if err == nil {
			err = dec.Reset(blob)
		}
		if err != nil {
			if dec != nil {
				dec.Close()
			}
			return nil, zstdErr(err, 0)
		}
		return dec.IOReadCloser(), nil
	}
	return io.NopCloser(blob), nil
}

var (
	_ io.Reader     = (*GzipReader)(nil)
	_ io.Reader     = (*ZstdReader)(nil)
	_ io.Reader     = (*ReadAhead)(nil)
	_ io.Reader     = (*CountingReader)(nil)
	_ io.ReadCloser = (*frameReader)(nil)
)
