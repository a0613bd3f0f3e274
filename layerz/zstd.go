package layerz

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/klauspost/compress/zstd"
)

// MaxZstdWindow is the largest zstd window accepted (zstd --ultra -22 uses
// 128 MiB; the CLI's levels up to 19 use at most 8 MiB).
const MaxZstdWindow = 1 << 27

// zstd block types (RFC 8878 section 3.1.1.2.2).
const (
	zstdBlockRaw = iota
	zstdBlockRLE
	zstdBlockCompressed
	zstdBlockReserved
)

const zstdMaxBlockSize = 128 << 10

// NewZstdDecoder returns a single-threaded zstd decoder that refuses frames
// declaring a window larger than MaxZstdWindow (the decoder allocates the
// declared window up front). Close releases it.
func NewZstdDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxZstdWindow),
		zstd.WithDecoderMaxMemory(MaxZstdWindow),
	)
}

// zstdFrameReader passes exactly the bytes of one zstd frame from br,
// finding its end by parsing the frame and block headers.
type zstdFrameReader struct {
	br       *bufio.Reader
	remain   int  // bytes of the current piece (header, block, checksum) not yet passed on
	inBlocks bool // the header has been passed on
	last     bool // the current block is the last one
	checksum bool // the frame ends with a 4-byte checksum
	cksDone  bool
	done     bool
	fcs      int64 // frame content size, -1 if absent
	n        int64 // bytes passed on
	rerr     error // an error of the blob reader (not EOF)
}

// start parses a data frame header at the current position of br (whose
// magic was already checked) and prepares to pass on the frame.
func (f *zstdFrameReader) start(br *bufio.Reader) error {
	*f = zstdFrameReader{br: br, fcs: -1}
	h, err := br.Peek(5)
	if err != nil {
		return truncErr(err, "zstd: frame header truncated")
	}
	fhd := h[4]
	if fhd&0x08 != 0 {
		return corruptf("zstd: reserved bit set in frame header descriptor")
	}
	single := fhd&0x20 != 0
	fcsFlag := fhd >> 6
	f.checksum = fhd&0x04 != 0
	size := 5
	if !single {
		size++ // window descriptor
	}
	size += [4]int{0, 1, 2, 4}[fhd&3]
	fcsSize := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsSize = 1
	}
	size += fcsSize
	h, err = br.Peek(size)
	if err != nil {
		return truncErr(err, "zstd: frame header truncated")
	}
	if fcsSize > 0 {
		b := h[size-fcsSize:]
		switch fcsSize {
		case 1:
			f.fcs = int64(b[0])
		case 2:
			f.fcs = int64(binary.LittleEndian.Uint16(b)) + 256
		case 4:
			f.fcs = int64(binary.LittleEndian.Uint32(b))
		case 8:
			f.fcs = int64(binary.LittleEndian.Uint64(b))
		}
	}
	f.remain = size
	return nil
}

// Read passes on bytes of the frame and returns io.EOF after its last byte.
func (f *zstdFrameReader) Read(p []byte) (int, error) {
	for f.remain == 0 {
		if f.done {
			return 0, io.EOF
		}
		switch {
		case f.inBlocks && f.last:
			if f.checksum && !f.cksDone {
				f.cksDone = true
				f.remain = 4
				continue
			}
			f.done = true
			return 0, io.EOF
		default:
			f.inBlocks = true
			h, err := f.br.Peek(3)
			if err != nil {
				if err != io.EOF {
					f.rerr = err
					return 0, err
				}
				return 0, corruptf("zstd: block header truncated")
			}
			v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
			f.last = v&1 != 0
			typ := (v >> 1) & 3
			bs := int(v >> 3)
			switch typ {
			case zstdBlockReserved:
				return 0, corruptf("zstd: reserved block type")
			case zstdBlockRLE:
				f.remain = 3 + 1
			default:
				f.remain = 3 + bs
			}
			if bs > zstdMaxBlockSize {
				return 0, corruptf("zstd: block size %d exceeds 128 KiB", bs)
			}
		}
	}
	if len(p) > f.remain {
		p = p[:f.remain]
	}
	n, err := f.br.Read(p)
	f.remain -= n
	f.n += int64(n)
	switch {
	case err == io.EOF && f.remain > 0:
		return n, corruptf("zstd: frame truncated")
	case err == io.EOF:
		err = nil
	case err != nil:
		f.rerr = err
	}
	return n, err
}

// ZstdReader decompresses a sequence of zstd frames (skippable frames
// skipped) from br and records the data frames.
type ZstdReader struct {
	cr   *CountingReader
	br   *bufio.Reader
	dec  *zstd.Decoder
	fr   zstdFrameReader
	in   bool // inside a data frame
	cur  ZstdFrame
	uoff int64
	// frames lists the data frames completed so far.
	frames []ZstdFrame
	err    error
}

// NewZstdReader returns a reader of the zstd stream in br, which reads from
// cr; dec is the decoder to use (see NewZstdDecoder), owned by the caller.
func NewZstdReader(cr *CountingReader, br *bufio.Reader, dec *zstd.Decoder) *ZstdReader {
	return &ZstdReader{cr: cr, br: br, dec: dec}
}

// Frames returns the data frames completed so far, in blob order.
func (z *ZstdReader) Frames() []ZstdFrame { return z.frames }

func (z *ZstdReader) consumed() int64 {
	return z.cr.N - int64(z.br.Buffered())
}

// Read implements io.Reader over the concatenated output of all frames.
func (z *ZstdReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	for {
		if !z.in {
			if err := z.startFrame(); err != nil {
				z.err = err
				return 0, err
			}
		}
		n, err := z.dec.Read(p)
		z.uoff += int64(n)
		z.cur.ULen += int64(n)
		if err == io.EOF {
			if err := z.endFrame(); err != nil {
				z.err = err
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			if z.fr.rerr != nil {
				err = z.fr.rerr // the blob reader's own error
			} else {
				err = zstdErr(err, z.consumed())
			}
			z.err = err
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// truncErr returns ErrCorrupt with msg when err is the end of the blob, and
// the blob reader's error otherwise.
func truncErr(err error, msg string) error {
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return corruptf("%s", msg)
	}
	return err
}

func zstdErr(err error, at int64) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return corruptf("zstd: %v (near blob offset %d)", err, at)
}

// startFrame skips skippable frames and starts the next data frame, or
// returns io.EOF at the end of the blob after at least one frame.
func (z *ZstdReader) startFrame() error {
	for {
		m, err := z.br.Peek(4)
		if len(m) == 0 && err == io.EOF {
			if len(z.frames) == 0 {
				return corruptf("zstd: no data frame")
			}
			return io.EOF
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(m) < 4 {
			return corruptf("zstd: trailing garbage after the last frame")
		}
		if isSkippableMagic(m) {
			h, err := z.br.Peek(8)
			if err != nil {
				return truncErr(err, "zstd: skippable frame header truncated")
			}
			size := int64(binary.LittleEndian.Uint32(h[4:]))
			z.br.Discard(8)
			if n, err := z.br.Discard(int(size)); int64(n) != size {
				return truncErr(err, "zstd: skippable frame truncated")
			}
			continue
		}
		if string(m[:4]) != zstdMagic {
			if len(z.frames) == 0 {
				return corruptf("zstd: bad magic")
			}
			return corruptf("zstd: trailing garbage after the last frame")
		}
		break
	}
	z.cur = ZstdFrame{COff: z.consumed(), UOff: z.uoff}
	if err := z.fr.start(z.br); err != nil {
		return err
	}
	if err := z.dec.Reset(&z.fr); err != nil {
		if z.fr.rerr != nil {
			return z.fr.rerr
		}
		return zstdErr(err, z.cur.COff)
	}
	z.in = true
	return nil
}

func (z *ZstdReader) endFrame() error {
	if !z.fr.done {
		// The decoder stopped before the frame's end as parsed.
		if _, err := z.fr.Read(nil); err != io.EOF || !z.fr.done {
			return corruptf("zstd: frame at blob offset %d: decoder stopped before its end", z.cur.COff)
		}
	}
	if z.fr.fcs >= 0 && z.fr.fcs != z.cur.ULen {
		return corruptf("zstd: frame at blob offset %d: content size %d, decoded %d", z.cur.COff, z.fr.fcs, z.cur.ULen)
	}
	z.cur.CLen = z.fr.n
	z.frames = append(z.frames, z.cur)
	z.in = false
	return nil
}
