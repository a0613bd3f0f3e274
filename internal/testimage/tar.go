package testimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"time"
)

// DefaultTime is the modification time of entries that set none, and the
// default "created" time of image configs: 2024-01-02T03:04:05Z. It has no
// sub-second part, so that entries with default times fit a plain USTAR
// header; set Entry.ModTime with nanoseconds to get PAX time records.
var DefaultTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// NanoTime is a convenient time with a nanosecond part
// (2024-01-02T03:04:05.123456789Z) for tests of sub-second precision.
var NanoTime = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

// Entry is one tar entry. Entries are written in the order given, each by its
// own archive/tar Writer, so the headers are exactly what Go writes for the
// resulting tar.Header (plus PAX or GNU long-name headers when Go needs them).
type Entry struct {
	// Name is written verbatim as the tar name, so "./a", "/abs", "a/../b",
	// "dir/", ".wh.x" and "dir/.wh..wh..opq" are all possible.
	Name string
	// Type is the tar typeflag: tar.TypeReg (the default when 0),
	// tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar,
	// tar.TypeBlock, tar.TypeFifo, tar.TypeCont, tar.TypeGNUSparse (written
	// by hand in the old GNU format, see Sparse), tar.TypeXGlobalHeader
	// (only PAXRecords are used) ...
	Type byte
	// TypeflagNUL writes a regular file with the legacy V7 typeflag '\x00'
	// (tar.TypeRegA) instead of '0'. Go's Writer would promote it, so the
	// header is patched after writing.
	TypeflagNUL bool
	// Mode holds the permission and special bits (e.g. 04755, 01777). 0
	// means the default for the type: 0755 for directories, 0777 for
	// symlinks, 0644 otherwise. Set ZeroMode to write a mode of 0.
	Mode int64
	// ZeroMode writes mode 0 (as umoci does for whiteout entries).
	ZeroMode bool
	// Uid and Gid are the numeric owner; Uname and Gname are optional names.
	Uid, Gid     int
	Uname, Gname string
	// Body is the file content. It is allowed for types that carry data
	// (regular, contiguous, GNU sparse); for header-only types (links,
	// directories, devices, FIFOs) a Body is an error: use Raw for that.
	Body []byte
	// Linkname is the target of a symlink or hard link, written verbatim.
	Linkname string
	// ModTime is the modification time; the zero value means DefaultTime.
	// AccessTime and ChangeTime are written only when non-zero (as PAX
	// records, or GNU fields when Format is tar.FormatGNU).
	ModTime, AccessTime, ChangeTime time.Time
	// ZeroTime writes mtime 0 (the Unix epoch) and no atime or ctime.
	ZeroTime bool
	// Devmajor and Devminor are the device numbers of char and block devices.
	Devmajor, Devminor int64
	// Format forces the tar format. The default is tar.FormatPAX when the
	// entry has sub-second times, an atime/ctime or PAXRecords, and otherwise
	// whatever Go picks first among USTAR, PAX and GNU (USTAR when possible).
	Format tar.Format
	// PAXRecords are extra PAX records, e.g. "SCHILY.xattr.user.k".
	PAXRecords map[string]string
	// Sparse is the data map of a tar.TypeGNUSparse entry: the fragments of
	// the logical file that are stored, in order. Body holds the stored bytes
	// of all fragments concatenated (its length must be the sum of the
	// fragment lengths); SparseSize is the logical file size. The header is
	// the old GNU sparse format ('S', up to 4 fragments in the header, more
	// in extension blocks), which Go's tar reader expands transparently.
	// GNU tar reads each fragment's data from a fresh 512-byte block, Go
	// reads the data contiguously: they agree (and real GNU archives look
	// like this) when every fragment but the last has a length that is a
	// multiple of 512. GNU tar also ends a file that ends in a hole with a
	// zero-length fragment at SparseSize. Both are left to the caller.
	Sparse     []SparseFragment
	SparseSize int64
	// Raw, when non-nil, is written verbatim in place of this entry (a
	// hand-made header and data; keep it a multiple of 512 bytes to keep the
	// following entries aligned). All other fields are then ignored.
	Raw []byte
}

// SparseFragment is one stored data region of a sparse file.
type SparseFragment struct {
	Offset, Length int64
}

// EntryPos locates one written entry in the uncompressed tar stream.
type EntryPos struct {
	// Offset is where the entry's first block starts (its PAX or GNU
	// long-name extension header, if any, else its header).
	Offset int64
	// HeaderOffset is the offset of the entry's own header block.
	HeaderOffset int64
	// DataOffset is the offset of the first data byte, and DataLength the
	// number of data bytes stored (0 for header-only entries). For Raw
	// entries DataOffset is -1.
	DataOffset, DataLength int64
}

const blockSize = 512

func (e *Entry) typeflag() byte {
	if e.Type == 0 {
		return tar.TypeReg
	}
	return e.Type
}

func headerOnly(t byte) bool {
	switch t {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// header converts e to a tar.Header (not used for GNU sparse or Raw entries).
func (e *Entry) header() (*tar.Header, error) {
	typ := e.typeflag()
	mode := e.Mode
	if mode == 0 && !e.ZeroMode {
		switch typ {
		case tar.TypeDir:
			mode = 0o755
		case tar.TypeSymlink:
			mode = 0o777
		default:
			mode = 0o644
		}
	}
	if typ == tar.TypeXGlobalHeader {
		return &tar.Header{Name: e.Name, Typeflag: typ, PAXRecords: copyMap(e.PAXRecords), Format: tar.FormatPAX}, nil
	}
	if headerOnly(typ) && len(e.Body) > 0 {
		return nil, fmt.Errorf("testimage: entry %q: Body on header-only type %q (use Raw)", e.Name, typ)
	}
	mt, at, ct := e.times()
	h := &tar.Header{
		Typeflag:   typ,
		Name:       e.Name,
		Linkname:   e.Linkname,
		Size:       int64(len(e.Body)),
		Mode:       mode,
		Uid:        e.Uid,
		Gid:        e.Gid,
		Uname:      e.Uname,
		Gname:      e.Gname,
		ModTime:    mt,
		AccessTime: at,
		ChangeTime: ct,
		Devmajor:   e.Devmajor,
		Devminor:   e.Devminor,
		PAXRecords: copyMap(e.PAXRecords),
		Format:     e.Format,
	}
	if h.Format == tar.FormatUnknown && (mt.Nanosecond() != 0 || !at.IsZero() || !ct.IsZero() || len(e.PAXRecords) > 0) {
		h.Format = tar.FormatPAX
	}
	return h, nil
}

func (e *Entry) times() (mt, at, ct time.Time) {
	if e.ZeroTime {
		return time.Unix(0, 0).UTC(), time.Time{}, time.Time{}
	}
	mt = e.ModTime
	if mt.IsZero() {
		mt = DefaultTime
	}
	return mt, e.AccessTime, e.ChangeTime
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TarBytes returns the uncompressed tar stream of entries, ending with the two
// zero blocks of a proper end-of-archive marker (no padding to a record size,
// like Go's Writer). To get a stream without end blocks, as umoci 0.4.7
// "insert" writes, slice off the last 1024 bytes and use Layer.RawTar.
func TarBytes(entries []Entry) ([]byte, error) {
	b, _, err := TarWithPositions(entries)
	return b, err
}

// TarWithPositions is TarBytes that also reports where each entry (by index
// in entries) was written.
func TarWithPositions(entries []Entry) ([]byte, []EntryPos, error) {
	var out bytes.Buffer
	pos := make([]EntryPos, len(entries))
	for i := range entries {
		e := &entries[i]
		start := int64(out.Len())
		if e.Raw != nil {
			out.Write(e.Raw)
			pos[i] = EntryPos{Offset: start, HeaderOffset: start, DataOffset: -1}
			continue
		}
		var b []byte
		var dataLen int64
		var err error
		if e.typeflag() == tar.TypeGNUSparse {
			b, dataLen, err = e.gnuSparseBytes()
		} else {
			b, dataLen, err = e.entryBytes()
		}
		if err != nil {
			return nil, nil, err
		}
		padded := roundUp(dataLen)
		hdrOff := start + int64(len(b)) - padded - blockSize
		if e.typeflag() == tar.TypeGNUSparse {
			// The header comes first, followed by its extension blocks.
			hdrOff = start
		}
		pos[i] = EntryPos{
			Offset:       start,
			HeaderOffset: hdrOff,
			DataOffset:   start + int64(len(b)) - padded,
			DataLength:   dataLen,
		}
		out.Write(b)
	}
	out.Write(make([]byte, 2*blockSize))
	return out.Bytes(), pos, nil
}

func roundUp(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// entryBytes writes one entry with a fresh tar.Writer and returns its blocks
// (extension headers, header, data, padding) and the data length.
func (e *Entry) entryBytes() ([]byte, int64, error) {
	h, err := e.header()
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(h); err != nil {
		return nil, 0, fmt.Errorf("testimage: entry %q: %w", e.Name, err)
	}
	var dataLen int64
	if h.Typeflag != tar.TypeXGlobalHeader && !headerOnly(h.Typeflag) {
		if _, err := tw.Write(e.Body); err != nil {
			return nil, 0, fmt.Errorf("testimage: entry %q: %w", e.Name, err)
		}
		dataLen = int64(len(e.Body))
	}
	if err := tw.Flush(); err != nil {
		return nil, 0, fmt.Errorf("testimage: entry %q: %w", e.Name, err)
	}
	b := buf.Bytes()
	if e.TypeflagNUL {
		if e.typeflag() != tar.TypeReg {
			return nil, 0, fmt.Errorf("testimage: entry %q: TypeflagNUL needs a regular file", e.Name)
		}
		hb := b[int64(len(b))-roundUp(dataLen)-blockSize:][:blockSize]
		hb[156] = tar.TypeRegA
		setChecksum(hb)
	}
	return b, dataLen, nil
}

// setChecksum recomputes a header block's checksum the way Go writes it.
func setChecksum(hb []byte) {
	copy(hb[148:156], "        ")
	var sum int64
	for _, c := range hb[:blockSize] {
		sum += int64(c)
	}
	copy(hb[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// gnuSparseBytes builds an old-GNU-format sparse entry by hand: Go's Writer
// cannot write sparse files.
func (e *Entry) gnuSparseBytes() ([]byte, int64, error) {
	var stored int64
	for _, f := range e.Sparse {
		if f.Offset < 0 || f.Length < 0 || f.Offset+f.Length > e.SparseSize {
			return nil, 0, fmt.Errorf("testimage: entry %q: bad sparse fragment %+v", e.Name, f)
		}
		stored += f.Length
	}
	if stored != int64(len(e.Body)) {
		return nil, 0, fmt.Errorf("testimage: entry %q: Body has %d bytes, sparse fragments %d", e.Name, len(e.Body), stored)
	}
	if len(e.Name) > 100 || len(e.Linkname) > 100 {
		return nil, 0, errors.New("testimage: sparse entry names are limited to 100 bytes")
	}
	mode := e.Mode
	if mode == 0 && !e.ZeroMode {
		mode = 0o644
	}
	mt, at, ct := e.times()
	hb := make([]byte, blockSize)
	copy(hb[0:100], e.Name)
	octal(hb[100:108], mode)
	octal(hb[108:116], int64(e.Uid))
	octal(hb[116:124], int64(e.Gid))
	octal(hb[124:136], stored)
	octal(hb[136:148], mt.Unix())
	hb[156] = tar.TypeGNUSparse
	copy(hb[157:257], e.Linkname)
	copy(hb[257:265], "ustar  \x00")
	copy(hb[265:297], e.Uname)
	copy(hb[297:329], e.Gname)
	if !at.IsZero() {
		octal(hb[345:357], at.Unix())
	}
	if !ct.IsZero() {
		octal(hb[357:369], ct.Unix())
	}
	frags := e.Sparse
	for i := 0; i < 4 && len(frags) > 0; i++ {
		octal(hb[386+24*i:][:12], frags[0].Offset)
		octal(hb[386+24*i+12:][:12], frags[0].Length)
		frags = frags[1:]
	}
	if len(frags) > 0 {
		hb[482] = 1
	}
	octal(hb[483:495], e.SparseSize)
	setChecksum(hb)
	out := append([]byte{}, hb...)
	for len(frags) > 0 {
		ext := make([]byte, blockSize)
		for i := 0; i < 21 && len(frags) > 0; i++ {
			octal(ext[24*i:][:12], frags[0].Offset)
			octal(ext[24*i+12:][:12], frags[0].Length)
			frags = frags[1:]
		}
		if len(frags) > 0 {
			ext[504] = 1
		}
		out = append(out, ext...)
	}
	out = append(out, e.Body...)
	out = append(out, make([]byte, roundUp(stored)-stored)...)
	return out, stored, nil
}

// octal formats v into field as zero-padded octal digits followed by a NUL.
func octal(field []byte, v int64) {
	s := fmt.Sprintf("%0*o", len(field)-1, v)
	copy(field, s)
	field[len(field)-1] = 0
}
