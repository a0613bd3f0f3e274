package testimage

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression selects how a layer's tar stream is compressed.
type Compression string

const (
	// Gzip is one gzip member written by klauspost/compress/gzip at the
	// default level. It is the default when Layer.Compression is "".
	Gzip Compression = "gzip"
	// GzipMulti is several concatenated gzip members, split at the split
	// points (see Compress), i.e. both at block boundaries and in the middle
	// of blocks (inside headers or file data).
	GzipMulti Compression = "gzip-multi"
	// GzipFlush is one gzip member with a sync flush (an empty stored deflate
	// block) at every split point, as pgzip-style writers produce.
	GzipFlush Compression = "gzip-flush"
	// GzipStored is one gzip member at level 0: stored deflate blocks only.
	GzipStored Compression = "gzip-stored"
	// GzipStdlib is one gzip member written by the standard library's
	// compress/gzip (as Docker's archive package does).
	GzipStdlib Compression = "gzip-stdlib"
	// Zstd is one zstd frame (klauspost/compress/zstd, with checksum).
	Zstd Compression = "zstd"
	// ZstdMulti is several zstd frames, one per split segment.
	ZstdMulti Compression = "zstd-multi"
	// ZstdSkippable is ZstdMulti with a skippable frame before the first
	// frame, between frames and at the end.
	ZstdSkippable Compression = "zstd-skippable"
	// None is the uncompressed tar stream.
	None Compression = "none"
)

// DefaultSplits returns the split points used when none are given for a
// stream of n bytes: 512 (right after the first header block), 1300 (inside
// the third block) and then every 64 KiB + 1300; only points strictly inside
// (0, n) are kept.
func DefaultSplits(n int64) []int64 {
	var s []int64
	for _, p := range []int64{512, 1300} {
		if p < n {
			s = append(s, p)
		}
	}
	for p := int64(65536 + 1300); p < n; p += 65536 {
		s = append(s, p)
	}
	return s
}

// Compress compresses tarBytes with c, using DefaultSplits for the multi-member,
// multi-frame and flush variants.
func Compress(tarBytes []byte, c Compression) ([]byte, error) {
	return CompressSplit(tarBytes, c, nil)
}

// CompressSplit is Compress with explicit split points: offsets into tarBytes
// where a new gzip member or zstd frame starts (or, for GzipFlush, where a
// flush happens). Points must be ascending and within [0, len(tarBytes)];
// repeated points, 0 and len(tarBytes) produce empty members or frames. A nil
// splits means DefaultSplits. Splits are ignored by the single-stream kinds.
func CompressSplit(tarBytes []byte, c Compression, splits []int64) ([]byte, error) {
	if splits == nil {
		splits = DefaultSplits(int64(len(tarBytes)))
	}
	if !sort.SliceIsSorted(splits, func(i, j int) bool { return splits[i] < splits[j] }) {
		return nil, fmt.Errorf("testimage: split points not ascending: %v", splits)
	}
	for _, p := range splits {
		if p < 0 || p > int64(len(tarBytes)) {
			return nil, fmt.Errorf("testimage: split point %d outside [0, %d]", p, len(tarBytes))
		}
	}
	segs := segments(tarBytes, splits)
	switch c {
	case "", Gzip:
		return gzipMember(tarBytes, gzip.DefaultCompression, nil)
	case GzipStored:
		return gzipMember(tarBytes, gzip.NoCompression, nil)
	case GzipFlush:
		return gzipMember(tarBytes, gzip.DefaultCompression, segs)
	case GzipStdlib:
		var buf bytes.Buffer
		zw := stdgzip.NewWriter(&buf)
		if _, err := zw.Write(tarBytes); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case GzipMulti:
		var out []byte
		for _, s := range segs {
			m, err := gzipMember(s, gzip.DefaultCompression, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
		return out, nil
	case Zstd:
		return zstdFrames([][]byte{tarBytes}, false)
	case ZstdMulti:
		return zstdFrames(segs, false)
	case ZstdSkippable:
		return zstdFrames(segs, true)
	case None:
		return append([]byte(nil), tarBytes...), nil
	}
	return nil, fmt.Errorf("testimage: unknown compression %q", c)
}

func segments(b []byte, splits []int64) [][]byte {
	var segs [][]byte
	prev := int64(0)
	for _, p := range splits {
		segs = append(segs, b[prev:p])
		prev = p
	}
	return append(segs, b[prev:])
}

// gzipMember writes one gzip member; with flushAfter, the writer is flushed
// after each segment but the last.
func gzipMember(b []byte, level int, flushAfter [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, err
	}
	if flushAfter == nil {
		if _, err := zw.Write(b); err != nil {
			return nil, err
		}
	} else {
		for i, s := range flushAfter {
			if _, err := zw.Write(s); err != nil {
				return nil, err
			}
			if i < len(flushAfter)-1 {
				if err := zw.Flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// skippableFrame is a zstd skippable frame (magic 0x184D2A50) with a short
// payload.
func skippableFrame() []byte {
	payload := []byte("testimage skippable frame")
	f := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(f[0:4], 0x184D2A50)
	binary.LittleEndian.PutUint32(f[4:8], uint32(len(payload)))
	return append(f, payload...)
}

func zstdFrames(segs [][]byte, skippable bool) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	var out []byte
	if skippable {
		out = append(out, skippableFrame()...)
	}
	for _, s := range segs {
		out = enc.EncodeAll(s, out)
		if skippable {
			out = append(out, skippableFrame()...)
		}
	}
	return out, nil
}

// Decompress returns the uncompressed content of a layer blob, detecting the
// compression from its magic bytes: gzip (all members), zstd (all frames,
// skippable frames skipped) or, for anything else, the bytes themselves.
func Decompress(blob []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(blob, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) || isSkippable(blob):
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		return dec.DecodeAll(blob, nil)
	}
	return append([]byte(nil), blob...), nil
}

func isSkippable(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b)&0xFFFFFFF0 == 0x184D2A50
}
