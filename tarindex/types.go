// Package tarindex indexes one OCI layer blob in a single streaming pass.
//
// It detects the compression (gzip, including multi-member gzip, zstd, or an
// uncompressed tar) from the media type and confirms it with the magic bytes,
// walks the tar headers and records, for every entry, its clean path, type,
// mode, owner, times, link target and, for regular files, the offset and
// length of its data in the uncompressed tar stream. The same pass computes
// the sha256 of the whole uncompressed stream (the layer's DiffID), clip's
// {COff, UOff} gzip checkpoints, resumable inflate checkpoints and zstd frame
// boundaries.
//
// The package knows nothing about overlays or clip's node tree: whiteout
// entries are reported as ordinary entries and interpreted by package archive.
package tarindex

import (
	"errors"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/limits"
)

// AlgorithmVersion changes whenever Index can produce a different Result for
// the same blob and options without the Result type changing (new
// checkpoint placement, path rules, ...). Caches of results include it in
// their keys.
const AlgorithmVersion = 3

// EntryKind is the type of a tar entry as ociclip understands it.
type EntryKind uint8

const (
	KindFile     EntryKind = iota // regular file (tar '0' or '\x00')
	KindDir                       // directory
	KindSymlink                   // symbolic link
	KindHardlink                  // hard link; Linkname holds the target verbatim
	KindChar                      // character device
	KindBlock                     // block device
	KindFIFO                      // named pipe
)

// String returns a short lower-case name of the kind.
func (k EntryKind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	case KindHardlink:
		return "hardlink"
	case KindChar:
		return "char"
	case KindBlock:
		return "block"
	case KindFIFO:
		return "fifo"
	}
	return "unknown"
}

// Entry is one tar entry of a layer.
type Entry struct {
	// Path is the clean absolute path of the entry inside the image root:
	// "./usr/bin/" becomes "/usr/bin", and the root entry ("./" or "/") is "/".
	Path string
	// AbsName: the tar name began with "/". containerd's applier resolves
	// the parent of such a name from its absolute text, which can place it
	// elsewhere when symlink targets hold ".." (see package archive).
	AbsName bool
	Kind    EntryKind
	// Mode holds the permission and special bits (07777) of the tar header,
	// without file type bits.
	Mode uint32
	Uid  uint32
	Gid  uint32
	// Size is the length of a regular file's data; 0 for other kinds.
	Size int64
	// Offset is the offset of a regular file's first data byte in the
	// uncompressed tar stream; 0 for other kinds.
	Offset int64
	// Linkname is the target of a symlink or hard link, verbatim (a hard
	// link's is resolved by the merge, relative to the image root).
	Linkname string
	// Times from the tar header (PAX/GNU atime and ctime when present; zero
	// otherwise).
	ModTime    time.Time
	AccessTime time.Time
	ChangeTime time.Time
	Devmajor   int64
	Devminor   int64
}

// Checkpoint is one of clip's gzip checkpoints: the deflate block that
// starts at byte COff of the blob produces uncompressed byte UOff. It cannot
// resume inflation by itself (no bit offset, no window); clip's storage uses
// it as a hint. The conversion to clip's common.GzipCheckpoint happens where
// the archive's storage info is built.
type Checkpoint struct {
	COff int64
	UOff int64
}

// Result is the outcome of indexing one layer.
type Result struct {
	Compression      layerz.Compression
	Entries          []Entry
	DiffID           digest.Digest // sha256 of the whole uncompressed stream
	UncompressedSize int64
	CompressedSize   int64
	// GzipCheckpoints are clip-form {COff, UOff} pairs chosen by clip's
	// interval rules, each on a real deflate block boundary. Empty for other
	// compressions.
	GzipCheckpoints []Checkpoint
	// ResumePoints are resumable checkpoints, at most one per span. Empty for
	// other compressions or when disabled.
	ResumePoints []layerz.ResumePoint
	// ZstdFrames lists the data frames of a zstd layer (skippable frames
	// skipped). Empty for other compressions.
	ZstdFrames []layerz.ZstdFrame
	// ChunkSize and ChunkCRCs: the CRC-32C (Castagnoli) of every ChunkSize
	// bytes of the uncompressed stream, the last chunk possibly shorter, so
	// that a random-access reader can verify what it inflates.
	ChunkSize int64
	ChunkCRCs []uint32
}

// Sentinel errors; errors returned by this package wrap one of these where a
// caller might branch on the cause.
var (
	// ErrUnknownMediaType: the layer media type is not one ociclip can
	// index (the same value as layerz.ErrUnknownMediaType).
	ErrUnknownMediaType = layerz.ErrUnknownMediaType
	// ErrCompressionMismatch: the media type and the magic bytes disagree.
	ErrCompressionMismatch = errors.New("layer compression does not match its media type")
	// ErrCorrupt: the compressed stream or the tar stream is malformed or
	// truncated (the same value as layerz.ErrCorrupt).
	ErrCorrupt = layerz.ErrCorrupt
	// ErrSparse: the layer holds a sparse file, which clip cannot describe.
	ErrSparse = errors.New("sparse file in layer")
	// ErrUnsafePath: an entry name or link target contains NUL (".." stops
	// at the root, as in containerd's and umoci's appliers).
	ErrUnsafePath = errors.New("unsafe path in layer")
	// ErrLimit: a configured limit was exceeded (limits.ErrLimit; the
	// error is a *limits.Error that names it).
	ErrLimit = limits.ErrLimit
)
