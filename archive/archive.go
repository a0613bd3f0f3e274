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
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive/internal/detgob"
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
)

// Archive is the decoded content of a clip v2 metadata archive.
type Archive struct {
	Header      common.ClipArchiveHeader
	Nodes       []*common.ClipNode // sorted by path, as stored
	StorageType string
	Storage     common.OCIStorageInfo // set when StorageType is "oci"
	// Extension is ociclip's extension section, nil when the file has none.
	Extension *Extension
}

// Encode writes the archive bytes for nodes (sorted by path) and info to w,
// followed by ext when it is not nil.
func Encode(w io.Writer, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) error {
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
		return fmt.Errorf("encoding index: %w", err)
	}
	data, err := enc.Marshal(info)
	if err != nil {
		return fmt.Errorf("encoding storage info: %w", err)
	}
	storage, err := enc.Marshal(&common.StorageInfoWrapper{Type: StorageTypeOCI, Data: data})
	if err != nil {
		return fmt.Errorf("encoding storage info wrapper: %w", err)
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
	if err := binary.Write(w, binary.LittleEndian, &h); err != nil {
		return err
	}
	if _, err := w.Write(index); err != nil {
		return err
	}
	if _, err := w.Write(storage); err != nil {
		return err
	}
	if ext != nil {
		b, err := ext.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// CheckOutput tells early whether WriteFile could write path: path is not a
// directory, and a temporary file can be created (and is removed at once) in
// its directory. Errors are those WriteFile would return.
func CheckOutput(path string) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// createTemp creates the temporary file WriteFile writes before renaming it
// to path, after checking that path is not a directory.
func createTemp(path string) (*os.File, error) {
	if fi, statErr := os.Stat(path); statErr == nil && fi.IsDir() {
		return nil, fmt.Errorf("output: %w", &fs.PathError{Op: "write", Path: path, Err: syscall.EISDIR})
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating output: %w", err)
	}
	return f, nil
}

// WriteFile writes the archive to path atomically: the bytes go to a
// temporary file in the same directory, which is synced and renamed over
// path only when everything succeeded. On failure path is left as it was.
// A path that is a directory fails with an error wrapping syscall.EISDIR,
// a missing directory with one wrapping fs.ErrNotExist.
func WriteFile(path string, nodes []*common.ClipNode, info *common.OCIStorageInfo, ext *Extension) error {
	return writeAtomic(path, func(w io.Writer) error { return Encode(w, nodes, info, ext) })
}

// writeAtomic writes what encode writes to path as WriteFile describes.
func writeAtomic(path string, encode func(io.Writer) error) (err error) {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Straight to the file: no second copy of the archive in memory.
	fw := &fileWriter{f: f}
	bw := bufio.NewWriterSize(fw, 1<<20)
	if err = encode(bw); err == nil {
		err = bw.Flush()
	}
	if fw.err != nil {
		return fmt.Errorf("writing %s: %w", tmp, fw.err)
	}
	if err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	return nil
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
		ext, err := parseExtension(b[end:])
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
