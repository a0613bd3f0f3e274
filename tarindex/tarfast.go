package tarindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/ociclip/ociclip/layerz"
)

// tarReader reads the tar headers of the uncompressed stream. Plain USTAR
// headers of regular files, directories, symlinks and hard links, which is
// almost every header of a real layer, are parsed here, into one reused
// Header and with one allocation for the name; every other header (PAX and
// GNU extensions, other types and formats, zero blocks, anything malformed)
// goes to archive/tar, which reads that entry (and after an end of archive,
// a global header or a sparse file, the rest of the stream). Results, errors
// and stream positions are archive/tar's: the fast path accepts only headers
// archive/tar reads in exactly the same way.
type tarReader struct {
	u   *ustream
	blk [blockSize]byte
	hdr tar.Header
	// skip and pad are the data and the padding of the previous entry,
	// still to be skipped.
	skip, pad int64
	// tr, when set, reads the rest of the stream.
	tr *tar.Reader
}

const blockSize = 512

// USTAR header field offsets and lengths.
const (
	offName, lenName         = 0, 100
	offMode, lenMode         = 100, 8
	offUID, lenUID           = 108, 8
	offGID, lenGID           = 116, 8
	offSize, lenSize         = 124, 12
	offMtime, lenMtime       = 136, 12
	offChksum, lenChksum     = 148, 8
	offType                  = 156
	offLink, lenLink         = 157, 100
	offMagic, lenMagic       = 257, 6
	offDevmajor, lenDevmajor = 329, 8
	offDevminor, lenDevminor = 337, 8
	offPrefix, lenPrefix     = 345, 155
	offTrailer, lenTrailer   = 508, 4
)

// Next returns the next header like tar.Reader.Next. The header is valid
// until the next call.
func (r *tarReader) Next() (*tar.Header, error) {
	if r.tr != nil {
		return r.tr.Next()
	}
	// The data and padding of the previous entry (archive/tar's discard
	// and tryReadFull).
	if r.skip > 0 {
		want := r.u.pos + r.skip
		r.skip = 0
		// A stream that ends inside the data (the indexer reports the
		// decompressor's own error instead, if it has one).
		if _, _ = r.u.Seek(want-r.u.pos, io.SeekCurrent); r.u.pos < want {
			return nil, io.ErrUnexpectedEOF
		}
	}
	if r.pad > 0 {
		want := r.u.pos + r.pad
		r.pad = 0
		// Missing padding at the end is a clean end, as for archive/tar.
		if _, _ = r.u.Seek(want-r.u.pos, io.SeekCurrent); r.u.pos < want {
			return nil, io.EOF
		}
	}
	if _, err := io.ReadFull(r.u, r.blk[:]); err != nil {
		return nil, err
	}
	if h, ok := r.parse(); ok {
		return h, nil
	}
	// Anything else: archive/tar reads this entry from the block on.
	tr := tar.NewReader(&prefixed{b: r.blk[:], u: r.u})
	h, err := tr.Next()
	if err != nil || !r.resume(h) {
		r.tr = tr // the rest of the stream too (errors are sticky there)
	}
	return h, err
}

// resume tells whether the fast path can go on after an entry that
// archive/tar read, and sets skip and pad for its data.
func (r *tarReader) resume(h *tar.Header) bool {
	switch h.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		r.skip = 0
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		if h.Size < 0 {
			return false
		}
		r.skip = h.Size
	default: // global headers, sparse files, unknown types: stay with archive/tar
		return false
	}
	if layerz.IsSparse(h) {
		return false
	}
	r.pad = -r.skip & (blockSize - 1)
	return true
}

// parse parses r.blk when it is a plain USTAR header of a regular file,
// directory, symlink or hard link that archive/tar would read without
// error, and returns it in r.hdr.
func (r *tarReader) parse() (*tar.Header, bool) {
	b := &r.blk
	typ := b[offType]
	switch typ {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil, false
	}
	if string(b[offMagic:offMagic+lenMagic]) != "ustar\x00" || string(b[offTrailer:offTrailer+lenTrailer]) == "tar\x00" {
		return nil, false // V7, GNU or STAR
	}
	sum, ok := octal(b[offChksum : offChksum+lenChksum])
	if !ok {
		return nil, false
	}
	unsigned, signed := checksums(b)
	if sum != unsigned && sum != signed {
		return nil, false
	}
	var v [7]int64
	for i, f := range [7][2]int{{offMode, lenMode}, {offUID, lenUID}, {offGID, lenGID}, {offSize, lenSize},
		{offMtime, lenMtime}, {offDevmajor, lenDevmajor}, {offDevminor, lenDevminor}} {
		if v[i], ok = octal(b[f[0] : f[0]+f[1]]); !ok {
			return nil, false
		}
	}
	h := &r.hdr
	*h = tar.Header{
		Typeflag: typ,
		Mode:     v[0],
		Uid:      int(v[1]),
		Gid:      int(v[2]),
		Size:     v[3],
		ModTime:  time.Unix(v[4], 0),
		Devmajor: v[5],
		Devminor: v[6],
		Format:   tar.FormatUSTAR,
	}
	name, prefix := cstr(b[offName:offName+lenName]), cstr(b[offPrefix:offPrefix+lenPrefix])
	if len(prefix) > 0 {
		h.Name = string(prefix) + "/" + string(name)
	} else {
		h.Name = string(name)
	}
	if l := cstr(b[offLink : offLink+lenLink]); len(l) > 0 {
		h.Linkname = string(l)
	}
	r.skip = 0
	if typ == tar.TypeReg {
		r.skip = h.Size
	}
	r.pad = -r.skip & (blockSize - 1)
	return h, true
}

// cstr is archive/tar's parseString without the conversion: the bytes
// before the first NUL.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// octal parses a numeric field exactly as archive/tar's parseOctal does
// (leading and trailing spaces and NULs trimmed, the rest up to a NUL in
// octal; empty is 0); ok is false for a base-256 field or anything
// archive/tar would reject.
func octal(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return 0, false
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == 0) {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	b = cstr(b)
	var x uint64
	for _, c := range b {
		if c < '0' || c > '7' || x > (1<<63-1)>>3 {
			return 0, false
		}
		x = x<<3 | uint64(c-'0')
	}
	return int64(x), true
}

// checksums returns the unsigned and signed sums of the block with the
// checksum field taken as spaces (archive/tar's computeChecksum).
func checksums(b *[blockSize]byte) (unsigned, signed int64) {
	for i, c := range b {
		if offChksum <= i && i < offChksum+lenChksum {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return unsigned, signed
}

// prefixed reads b, then u; it seeks forward like u.
type prefixed struct {
	b []byte
	u *ustream
}

func (p *prefixed) Read(q []byte) (int, error) {
	if len(p.b) > 0 {
		n := copy(q, p.b)
		p.b = p.b[n:]
		return n, nil
	}
	return p.u.Read(q)
}

func (p *prefixed) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return 0, errors.New("tarindex: unsupported seek")
	}
	k := min(offset, int64(len(p.b)))
	p.b = p.b[k:]
	pos, err := p.u.Seek(offset-k, io.SeekCurrent)
	return pos - int64(len(p.b)), err
}
