package layerz

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// gzip header flags (RFC 1952 section 2.3.1).
const (
	gzFHCRC        = 1 << 1
	gzFEXTRA       = 1 << 2
	gzFNAME        = 1 << 3
	gzFCOMMENT     = 1 << 4
	gzReservedMask = 0xe0
)

// BlockEnd is the position of a deflate block end: the next block starts at
// bit Bit of blob byte COff and produces uncompressed byte UOff.
type BlockEnd struct {
	COff  int64
	UOff  int64
	Bit   uint8
	Final bool
}

// GzipReader decompresses a (multi-member) gzip stream read from br, doing the
// RFC 1952 member framing itself so that it can install a deflate block end
// callback and verify every member's CRC32 and ISIZE.
type GzipReader struct {
	cr *CountingReader // under br; cr.N is relative to base
	br *bufio.Reader
	// base is the blob offset of the first byte cr reads.
	base int64

	fr       io.ReadCloser // nil between members
	verify   bool          // the current member was read from its start
	crc      uint32
	isize    uint32
	members  int
	uoff     int64 // uncompressed bytes produced so far (absolute: starts at the resume UOff)
	memberU  int64 // uncompressed offset of the current member's first byte
	memberC  int64 // blob offset of the current member's header
	deflateC int64 // blob offset of the current member's deflate stream
	drift    int64 // running correction of flate's CompressedOffset, see onEOB
	err      error

	// onBlockEnd, when set, receives every deflate block end with its
	// corrected absolute position, and the flate checkpoint (whose Window
	// is valid only during the call).
	onBlockEnd func(be BlockEnd, cp *flate.InflateCheckpoint)
	cbFunc     func(flate.InflateCheckpoint)
}

// NewGzipReader returns a reader of the gzip stream in br, which reads from
// cr (so that positions in the blob are known). onBlockEnd, when not nil,
// receives every deflate block end with its corrected absolute position and
// the flate checkpoint, whose Window is valid only during the call.
func NewGzipReader(cr *CountingReader, br *bufio.Reader, onBlockEnd func(BlockEnd, *flate.InflateCheckpoint)) *GzipReader {
	return &GzipReader{cr: cr, br: br, onBlockEnd: onBlockEnd}
}

// Drift returns the running correction of flate's CompressedOffset in the
// current member (see onEOB).
func (g *GzipReader) Drift() int64 { return g.drift }

// MemberStart returns the blob offset of the current member's header.
func (g *GzipReader) MemberStart() int64 { return g.memberC }

// consumed returns the blob offset of the next byte flate will read.
func (g *GzipReader) consumed() int64 {
	return g.base + g.cr.N - int64(g.br.Buffered())
}

// onEOB corrects a flate checkpoint and forwards it.
//
// klauspost/compress v1.20.4 reports CompressedOffset = (roffset*8 - nb)/8,
// where roffset should be the number of deflate bytes read; but its stored
// block path (dataBlock) adds the bytes still held in the bit buffer to
// roffset although moreBits counted them when they were read. The error D
// grows by 0-3 bytes at every stored block. The bytes truly consumed, c,
// are known from the counting reader and bufio.Buffered; at a stored block's
// end the bit buffer is empty so CompressedOffset-c = D exactly, and at a
// Huffman block's end CompressedOffset-c = D - ceil(nb/8) <= D. D only
// changes in stored blocks, whose end is always reported, so the running
// maximum of CompressedOffset-c is D at every block end, and the true
// position is CompressedOffset-D with the same BitOffset.
func (g *GzipReader) onEOB(cp flate.InflateCheckpoint) {
	rel := g.consumed() - g.deflateC
	if d := cp.CompressedOffset - rel; d > g.drift {
		g.drift = d
	}
	be := BlockEnd{
		COff:  g.deflateC + cp.CompressedOffset - g.drift,
		UOff:  g.memberU + cp.UncompressedOffset,
		Bit:   cp.BitOffset,
		Final: cp.Final,
	}
	g.onBlockEnd(be, &cp)
}

// flateErr converts a flate error into ErrCorrupt; errors of the blob
// reader itself are passed on.
func flateErr(err error, at int64) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corruptf("gzip: deflate stream truncated at blob offset %d", at)
	case errors.As(err, &ce):
		return corruptf("gzip: invalid deflate data near blob offset %d", at)
	}
	var ie flate.InternalError
	if errors.As(err, &ie) {
		return corruptf("gzip: %v near blob offset %d", err, at)
	}
	return err
}

// Read implements io.Reader over the concatenated output of all members.
func (g *GzipReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	for {
		if g.fr == nil {
			if err := g.startMember(); err != nil {
				g.err = err
				return 0, err
			}
		}
		n, err := g.fr.Read(p)
		if n > 0 {
			g.crc = crc32.Update(g.crc, crc32.IEEETable, p[:n])
			g.isize += uint32(n)
			g.uoff += int64(n)
		}
		if err == io.EOF {
			if err := g.endMember(); err != nil {
				g.err = err
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			g.err = flateErr(err, g.consumed())
			return n, g.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// startMember parses the next member header, or returns io.EOF at the end
// of the blob after at least one member.
func (g *GzipReader) startMember() error {
	start := g.consumed()
	if _, err := g.br.Peek(1); err != nil {
		if err == io.EOF && g.members > 0 {
			return io.EOF
		}
		if err == io.EOF {
			return corruptf("gzip: empty stream")
		}
		return err
	}
	if err := readGzipHeader(g.br, g.members > 0); err != nil {
		return err
	}
	g.members++
	g.memberC = start
	g.deflateC = g.consumed()
	g.memberU = g.uoff
	g.drift = 0
	g.crc, g.isize = 0, 0
	g.verify = true
	if g.onBlockEnd != nil {
		if g.cbFunc == nil {
			g.cbFunc = g.onEOB
		}
		g.fr = flate.NewReaderOpts(g.br, flate.WithEobCallback(g.cbFunc))
	} else {
		g.fr = flate.NewReaderOpts(g.br)
	}
	return nil
}

// endMember reads and checks the member trailer.
func (g *GzipReader) endMember() error {
	var t [8]byte
	if _, err := io.ReadFull(g.br, t[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return corruptf("gzip: member at blob offset %d: trailer truncated", g.memberC)
		}
		return err
	}
	if g.verify {
		if crc := binary.LittleEndian.Uint32(t[:4]); crc != g.crc {
			return corruptf("gzip: member at blob offset %d: CRC32 %08x, data has %08x", g.memberC, crc, g.crc)
		}
		if size := binary.LittleEndian.Uint32(t[4:]); size != g.isize {
			return corruptf("gzip: member at blob offset %d: ISIZE %d, data has %d (mod 2^32)", g.memberC, size, g.isize)
		}
	}
	g.fr = nil
	return nil
}

// readGzipHeader parses one RFC 1952 member header from br. next tells
// whether a member was read before (then anything else than a gzip magic is
// trailing garbage).
func readGzipHeader(br *bufio.Reader, next bool) error {
	var h [10]byte
	n, err := io.ReadFull(br, h[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return err
	}
	if n < 2 || h[0] != 0x1f || h[1] != 0x8b {
		if next {
			return corruptf("gzip: trailing garbage after the last member")
		}
		return corruptf("gzip: bad magic")
	}
	if n < 10 {
		return corruptf("gzip: member header truncated")
	}
	if h[2] != 8 {
		return corruptf("gzip: unsupported compression method %d", h[2])
	}
	flg := h[3]
	if flg&gzReservedMask != 0 {
		return corruptf("gzip: reserved header flags set (%#x)", flg)
	}
	crc := crc32.Update(0, crc32.IEEETable, h[:])
	trunc := func(err error) error {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return corruptf("gzip: member header truncated")
		}
		return err
	}
	if flg&gzFEXTRA != 0 {
		var x [2]byte
		if _, err := io.ReadFull(br, x[:]); err != nil {
			return trunc(err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, x[:])
		xlen := int(binary.LittleEndian.Uint16(x[:]))
		for xlen > 0 {
			b, err := br.Peek(min(xlen, br.Size()))
			if len(b) == 0 {
				return trunc(err)
			}
			crc = crc32.Update(crc, crc32.IEEETable, b)
			br.Discard(len(b))
			xlen -= len(b)
		}
	}
	for _, f := range [2]byte{gzFNAME, gzFCOMMENT} {
		if flg&f == 0 {
			continue
		}
		// A zero-terminated string of any length: hash and drop it.
		for {
			b, err := br.ReadSlice(0)
			crc = crc32.Update(crc, crc32.IEEETable, b)
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				return trunc(err)
			}
		}
	}
	if flg&gzFHCRC != 0 {
		var x [2]byte
		if _, err := io.ReadFull(br, x[:]); err != nil {
			return trunc(err)
		}
		if binary.LittleEndian.Uint16(x[:]) != uint16(crc) {
			return corruptf("gzip: header CRC16 mismatch")
		}
	}
	return nil
}
