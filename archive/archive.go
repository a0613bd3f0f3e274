// Package archive merges per-layer tar indexes into clip's node tree and
// writes and reads beam-cloud/clip v2 metadata-only ("oci") archives.
//
// File layout (see docs/FORMAT.md): a 54-byte little-endian
// common.ClipArchiveHeader, the index (one gob stream of []*common.ClipNode
// sorted by path), the storage info (gob of common.StorageInfoWrapper{Type:
// "oci", Data: gob of common.OCIStorageInfo}), then optionally ociclip's own
// extension section, which clip's reader never looks at. All gob streams are
// written by a deterministic encoder, so the same input gives the same bytes.
package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive/internal/detgob"
	"github.com/ociclip/ociclip/internal/outfile"
)

// StorageTypeOCI is the storage type of metadata-only archives whose file
// contents live in OCI registry layers.
const StorageTypeOCI = "oci"

// Errors of the reader; returned errors wrap them.
var (
	// ErrNotClip: the file does not start with clip's magic and version.
	ErrNotClip = errors.New("not a clip archive")
	// ErrCorruptArchive: section offsets or lengths are out of bounds, or a
	// section does not decode.
	ErrCorruptArchive = errors.New("corrupt clip archive")
	// ErrSymlinkLoop: too many symbolic links while resolving a path (in
	// the overlay merge, or when a reader resolves a path).
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrNotRegularOutput: WriteFile refuses to replace a device node, FIFO
	// or socket.
	ErrNotRegularOutput = outfile.ErrNotRegular
)

// MaxSymlinks is how many symbolic links a path resolution follows, as
// Linux's MAXSYMLINKS.
const MaxSymlinks = 40

// Archive is the decoded content of a clip v2 metadata archive.
type Archive struct {
	Header      common.ClipArchiveHeader
	Nodes       []*common.ClipNode // sorted by path, as stored
	StorageType string
	Storage     common.OCIStorageInfo // set when StorageType is "oci"
	// Extension is ociclip's extension section, nil when the file has none.
	Extension *Extension
}

// Sizes are the byte lengths of an archive's sections.
type Sizes struct {
	Total       int64 // the .clip file: header, index, storage info and, when not separate, the extension
	Index       int64 // clip's node index
	StorageInfo int64 // clip's storage info (layers, checkpoints, metadata)
	// Extension is ociclip's extension section (resume-point windows and
	// chunk CRCs), in the .clip file or in a file of its own.
	Extension int64
}

// Encode writes the archive bytes for nodes (sorted by path) and info to w,
// followed by ext when it is not nil.
func Encode(w io.Writer, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) error {
	_, err := encode(w, nil, nodes, info, ext)
	return err
}

// EncodeSections writes clip's sections to w and ext's section to extW (to
// w when extW is nil): w's bytes followed by extW's are what Encode writes.
// It returns the sections' sizes.
func EncodeSections(w, extW io.Writer, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) (Sizes, error) {
	return encode(w, extW, nodes, info, ext)
}

func encode(w, extW io.Writer, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) (Sizes, error) {
	var sz Sizes
	enc := detgob.NewEncoder()
	// Size the index buffer from the nodes (an estimate a little above the
	// encoded size): growing a buffer of tens of MiB by appending would
	// allocate and copy several times that.
	// Measured on a 75k-node image: 53 bytes per node besides the strings;
	// 64 (+16 with a remote) leaves room for large ids and times.
	hint := 1 << 10
	for _, n := range nodes {
		hint += 64 + len(n.Path) + len(n.Target) + len(n.ContentHash)
		if n.Remote != nil {
			hint += 16 + len(n.Remote.LayerDigest)
		}
	}
	index, err := enc.MarshalSize(nodes, hint)
	if err != nil {
		return sz, fmt.Errorf("encoding index: %w", err)
	}
	data, err := enc.Marshal(info)
	if err != nil {
		return sz, fmt.Errorf("encoding storage info: %w", err)
	}
	storage, err := enc.Marshal(&common.StorageInfoWrapper{Type: StorageTypeOCI, Data: data})
	if err != nil {
		return sz, fmt.Errorf("encoding storage info wrapper: %w", err)
	}
	h := common.ClipArchiveHeader{
		ClipFileFormatVersion: common.ClipFileFormatVersion,
		IndexLength:           int64(len(index)),
		IndexPos:              common.ClipHeaderLength,
		StorageInfoLength:     int64(len(storage)),
		StorageInfoPos:        common.ClipHeaderLength + int64(len(index)),
	}
	copy(h.StartBytes[:], common.ClipFileStartBytes)
	copy(h.StorageInfoType[:], StorageTypeOCI)
	// The extension records the sha256 of what precedes it.
	hw := newSumWriter(w)
	if err := binary.Write(hw, binary.LittleEndian, &h); err != nil {
		return sz, err
	}
	if _, err := hw.Write(index); err != nil {
		return sz, err
	}
	if _, err := hw.Write(storage); err != nil {
		return sz, err
	}
	sz.Index, sz.StorageInfo = int64(len(index)), int64(len(storage))
	sz.Total = common.ClipHeaderLength + sz.Index + sz.StorageInfo
	if ext != nil {
		head, payload, err := ext.marshalSection(hw.sum())
		if err != nil {
			return sz, err
		}
		sz.Extension = int64(len(head))
		for _, b := range payload {
			sz.Extension += int64(len(b))
		}
		if extW == nil {
			extW, sz.Total = w, sz.Total+sz.Extension
		}
		// Many small pieces (the windows): buffered.
		bw := bufio.NewWriterSize(extW, 256<<10)
		for _, b := range append([][]byte{head}, payload...) {
			if _, err := bw.Write(b); err != nil {
				return sz, err
			}
		}
		if err := bw.Flush(); err != nil {
			return sz, err
		}
	}
	return sz, nil
}

// CheckOutput tells early whether WriteFile could write path: path (or
// the final target of the symlinks at path) is a regular file or nothing,
// and a temporary file can be created (and is removed at once) in its
// directory. Errors are those WriteFile would return.
func CheckOutput(path string) error {
	return outfile.Check(path)
}

// WriteFile writes the archive to path atomically: the bytes go to a
// temporary file in the same directory, which is synced and renamed over
// path only when everything succeeded. On failure path is left as it was.
// A symlink at path is followed and its target replaced; a replaced file
// keeps its mode (and owner, where permitted); a new file gets 0666 less
// the umask. A path that is a directory fails with an error wrapping
// syscall.EISDIR, a device node, FIFO or socket with one wrapping
// ErrNotRegularOutput, a missing directory with one wrapping
// fs.ErrNotExist.
func WriteFile(path string, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) error {
	_, err := WriteFiles(path, "", nodes, info, ext)
	return err
}

// WriteFiles is WriteFile, and with extPath set the extension section goes
// to extPath instead, atomically too, so that the file at path followed by
// the one at extPath is what WriteFile writes (for services that cap the
// archive's size). extPath is renamed into place just before path; if that
// last rename fails, extPath stays behind. It returns the sections' sizes.
func WriteFiles(path, extPath string, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) (Sizes, error) {
	var sz Sizes
	err := writeAtomic(path, func(w io.Writer) error {
		if extPath == "" || ext == nil {
			var err error
			sz, err = encode(w, nil, nodes, info, ext)
			return err
		}
		var extBuf bytes.Buffer
		var err error
		if sz, err = encode(w, &extBuf, nodes, info, ext); err != nil {
			return err
		}
		return writeAtomic(extPath, func(ew io.Writer) error {
			_, err := extBuf.WriteTo(ew)
			return err
		})
	})
	return sz, err
}

// writeAtomic writes what encode writes to path as WriteFile describes.
func writeAtomic(path string, encode func(io.Writer) error) (err error) {
	f, err := outfile.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	// Straight to the file: no second copy of the archive in memory.
	fw := &fileWriter{f: f.File}
	bw := bufio.NewWriterSize(fw, 1<<20)
	if err = encode(bw); err == nil {
		err = bw.Flush()
	}
	if fw.err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), fw.err)
	}
	if err != nil {
		return err
	}
	return f.Commit()
}

// fileWriter remembers the first error of writing the file, so that
// WriteFile tells write errors from encoding errors.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// ReadFile reads and decodes a clip archive, checking every offset against
// the file size before it allocates.
func ReadFile(path string) (*Archive, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Decode decodes archive bytes.
func Decode(b []byte) (*Archive, error) {
	if len(b) < common.ClipHeaderLength {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrNotClip, len(b), common.ClipHeaderLength)
	}
	var h common.ClipArchiveHeader
	if err := binary.Read(bytes.NewReader(b[:common.ClipHeaderLength]), binary.LittleEndian, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrNotClip, err)
	}
	if !bytes.Equal(h.StartBytes[:], common.ClipFileStartBytes) {
		return nil, fmt.Errorf("%w: bad magic % x", ErrNotClip, h.StartBytes)
	}
	if h.ClipFileFormatVersion != common.ClipFileFormatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrNotClip, h.ClipFileFormatVersion, common.ClipFileFormatVersion)
	}
	size := int64(len(b))
	section := func(name string, pos, length int64) ([]byte, error) {
		if pos < common.ClipHeaderLength || length < 0 || pos > size || length > size-pos {
			return nil, fmt.Errorf("%w: %s at %d length %d outside the %d-byte file", ErrCorruptArchive, name, pos, length, size)
		}
		return b[pos : pos+length], nil
	}
	a := &Archive{Header: h}
	ib, err := section("index", h.IndexPos, h.IndexLength)
	if err != nil {
		return nil, err
	}
	if err := gob.NewDecoder(bytes.NewReader(ib)).Decode(&a.Nodes); err != nil {
		return nil, fmt.Errorf("%w: index: %v", ErrCorruptArchive, err)
	}
	if err := checkNodes(a.Nodes); err != nil {
		return nil, err
	}
	end := h.IndexPos + h.IndexLength
	if h.StorageInfoLength > 0 {
		sb, err := section("storage info", h.StorageInfoPos, h.StorageInfoLength)
		if err != nil {
			return nil, err
		}
		var w common.StorageInfoWrapper
		if err := gob.NewDecoder(bytes.NewReader(sb)).Decode(&w); err != nil {
			return nil, fmt.Errorf("%w: storage info: %v", ErrCorruptArchive, err)
		}
		a.StorageType = w.Type
		if w.Type == StorageTypeOCI {
			if err := decodeStorageInfo(w.Data, &a.Storage); err != nil {
				return nil, fmt.Errorf("%w: oci storage info: %v", ErrCorruptArchive, err)
			}
		}
		end = h.StorageInfoPos + h.StorageInfoLength
	}
	if end < size {
		ext, err := parseExtension(b[end:], sha256.Sum256(b[:end]))
		if err != nil {
			return nil, err
		}
		a.Extension = ext
	}
	return a, nil
}

// checkNodes checks what readers of the index rely on: nodes sorted by
// path without duplicates (lookups are binary searches), each path a clean
// absolute path inside the image root, and data ranges that are not
// negative and do not overflow.
func checkNodes(nodes []*common.ClipNode) error {
	for i, n := range nodes {
		if n == nil {
			return fmt.Errorf("%w: index: node %d is nil", ErrCorruptArchive, i)
		}
		if !isCleanAbs(n.Path) {
			return fmt.Errorf("%w: index: node %d: path %q is not a clean absolute path", ErrCorruptArchive, i, n.Path)
		}
		if i > 0 && nodes[i-1].Path >= n.Path {
			return fmt.Errorf("%w: index: node %d: path %q does not sort after %q", ErrCorruptArchive, i, n.Path, nodes[i-1].Path)
		}
		if r := n.Remote; r != nil && (r.UOffset < 0 || r.ULength < 0 || r.ULength > math.MaxInt64-r.UOffset) {
			return fmt.Errorf("%w: index: node %s: data at offset %d length %d", ErrCorruptArchive, n.Path, r.UOffset, r.ULength)
		}
	}
	return nil
}

// isCleanAbs reports whether p starts with "/", is its own path.Clean and
// holds no NUL (a clean absolute path has no ".." component).
func isCleanAbs(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && strings.IndexByte(p, 0) < 0
}
