package ociclip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/spans"
)

// Errors of the Reader; returned errors wrap them.
var (
	// ErrNotFound: no node at that path (fs.ErrNotExist matches too).
	ErrNotFound = fmt.Errorf("no such file: %w", fs.ErrNotExist)
	// ErrNotRegular: the path names a directory (or a symlink when links are
	// not followed), which has no bytes to read.
	ErrNotRegular = errors.New("not a regular file")
	// ErrVerify: bytes inflated through the index do not match the checksums
	// recorded when the layer was indexed (a wrong checkpoint, a changed
	// blob, a corrupt index). The reader never returns such bytes. It is
	// spans.ErrVerify.
	ErrVerify = spans.ErrVerify
)

// BlobOpener gives random access to a layer blob by its digest.
type BlobOpener interface {
	OpenLayer(digest string) (io.ReaderAt, int64, error)
}

// Reader reads the files of a .clip archive through its index: for a gzip
// layer it inflates from the nearest resumable checkpoint before the data
// (at most one span plus one checksum chunk), for a zstd layer it decodes
// from the start of the frame holding the data, and for an uncompressed
// layer it reads the bytes in place. Every checksum chunk it inflates or
// reads is verified against the CRC-32C recorded at indexing time when the
// archive has them.
//
// Reader is an fs.FS (also fs.StatFS, fs.ReadFileFS and fs.ReadDirFS):
// names are slash-separated and unrooted ("etc/passwd", "." for the root),
// symlinks are followed inside the image root as a mount would follow
// them. Node and Lnode look up clip's nodes by absolute path. A Reader is
// safe for concurrent use.
//
// Reads go through a spans.Engine: each span of a layer is fetched and
// inflated once, kept in a bounded LRU cache, and shared by concurrent
// reads (ociclip cat, verify, the mount's storage backend).
type Reader struct {
	a      *archive.Archive
	src    spans.Source
	e      *spans.Engine
	closer io.Closer
}

var (
	_ io.ReaderAt   = nodeReaderAt{}
	_ fs.FS         = (*Reader)(nil)
	_ fs.StatFS     = (*Reader)(nil)
	_ fs.ReadFileFS = (*Reader)(nil)
	_ fs.ReadDirFS  = (*Reader)(nil)
)

// OpenReader opens the archive at archivePath and the image source that
// holds its layer blobs: a layout directory, or any source string
// CreateFromOCILayout accepts ("oci:DIR", "oci-archive:FILE", "dir:DIR",
// "docker-archive:FILE"; a ref part is ignored).
func OpenReader(archivePath, source string) (*Reader, error) {
	a, err := archive.ReadFile(archivePath)
	if err != nil {
		return nil, err
	}
	lb, err := blobs.OpenLayout(source)
	if err != nil {
		return nil, err
	}
	// cat and verify read whole files, and verify whole layers, in order: a
	// 32 MiB cache holds the spans in use and the read-ahead, and spans of
	// at least 4 MiB start a tenth of the decoders the resume points among
	// small files would (verify of the bench image: 10.0-10.2 s instead of
	// 11.1-11.4 s).
	r := NewSpanReader(a, lb, spans.New(a, lb, spans.Options{CacheSize: 32 << 20, MinSpan: 4 << 20}))
	r.closer = lb
	return r, nil
}

// NewReader returns a reader of a's files whose layer bytes come from
// blobs, through a span engine with default options. Close does not close
// blobs.
func NewReader(a *archive.Archive, blobs BlobOpener) *Reader {
	src := spans.ReaderAtSource(blobs)
	return NewSpanReader(a, src, spans.New(a, src, spans.Options{}))
}

// NewSpanReader returns a reader of a's files whose layer bytes come from
// the engine e (built on a and src; src also serves Verify's independent
// replay). Close closes e.
func NewSpanReader(a *archive.Archive, src spans.Source, e *spans.Engine) *Reader {
	return &Reader{a: a, src: src, e: e}
}

// Engine returns the span engine the reader reads through.
func (r *Reader) Engine() *spans.Engine { return r.e }

// Archive returns the decoded archive the reader reads.
func (r *Reader) Archive() *archive.Archive { return r.a }

// Close stops the span engine and releases the blob files OpenReader
// opened.
func (r *Reader) Close() error {
	err := r.e.Close()
	if r.closer != nil {
		err = errors.Join(err, r.closer.Close())
	}
	return err
}

// Inflated returns the number of uncompressed bytes decompressed so far,
// for tests and benchmarks that check reads stay within one span.
func (r *Reader) Inflated() int64 { return r.e.Stats().Inflated }

// Lnode returns the node at the absolute path p without following a final
// symlink (intermediate symlinks are followed).
func (r *Reader) Lnode(p string) (*common.ClipNode, error) {
	return r.resolve(p, false)
}

// Node returns the node at the absolute path p, following symlinks as a
// filesystem would.
func (r *Reader) Node(p string) (*common.ClipNode, error) {
	return r.resolve(p, true)
}

func (r *Reader) get(p string) *common.ClipNode {
	nodes := r.a.Nodes
	i := sort.Search(len(nodes), func(i int) bool { return nodes[i].Path >= p })
	if i < len(nodes) && nodes[i].Path == p {
		return nodes[i]
	}
	return nil
}

// resolve walks p component by component, substituting symlink targets
// (absolute ones from the root, relative ones from their directory).
func (r *Reader) resolve(p string, followLast bool) (*common.ClipNode, error) {
	orig := p
	links := 0
	pending := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		n := r.get(next)
		if n == nil {
			return nil, fmt.Errorf("%s: %w", orig, ErrNotFound)
		}
		if n.NodeType == common.SymLinkNode && (len(pending) > 0 || followLast) {
			links++
			if links > archive.MaxSymlinks {
				return nil, fmt.Errorf("%s: %w", orig, archive.ErrSymlinkLoop)
			}
			t := n.Target
			if strings.HasPrefix(t, "/") {
				cur = "/"
			}
			pending = append(strings.Split(strings.Trim(t, "/"), "/"), pending...)
			continue
		}
		if len(pending) > 0 && n.NodeType != common.DirNode {
			return nil, fmt.Errorf("%s: %s is not a directory: %w", orig, next, ErrNotFound)
		}
		cur = next
	}
	n := r.get(cur)
	if n == nil {
		return nil, fmt.Errorf("%s: %w", orig, ErrNotFound)
	}
	return n, nil
}

// OpenNode returns a reader of the bytes of the regular file node n (from
// Node or Lnode): an io.SectionReader, so io.ReaderAt, io.Seeker and
// io.Reader at once.
func (r *Reader) OpenNode(n *common.ClipNode) (*io.SectionReader, error) {
	if n.NodeType != common.FileNode || n.Remote == nil {
		return nil, fmt.Errorf("%s: %w", n.Path, ErrNotRegular)
	}
	return io.NewSectionReader(nodeReaderAt{r, n}, 0, n.Remote.ULength), nil
}

// nodeReaderAt is the io.ReaderAt of one file node.
type nodeReaderAt struct {
	r *Reader
	n *common.ClipNode
}

func (x nodeReaderAt) ReadAt(b []byte, off int64) (int, error) { return x.r.readAt(x.n, b, off) }

// ReadNode reads len(b) bytes of the regular file node n from offset off,
// as io.ReaderAt: fewer bytes only at the end of the file, with io.EOF.
// Bytes that do not match the index are an error wrapping ErrVerify, a
// failing blob source one wrapping spans.ErrFetch.
func (r *Reader) ReadNode(ctx context.Context, n *common.ClipNode, b []byte, off int64) (int, error) {
	if n.NodeType != common.FileNode || n.Remote == nil {
		return 0, fmt.Errorf("%s: %w", n.Path, ErrNotRegular)
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", n.Path, off)
	}
	size := n.Remote.ULength
	if len(b) == 0 {
		return 0, nil // as os.File.ReadAt: nothing asked, nothing to report, at any offset
	}
	if off >= size {
		return 0, io.EOF
	}
	want := b
	if int64(len(want)) > size-off {
		want = want[:size-off]
	}
	if err := r.checkRange(ctx, n); err != nil {
		return 0, err
	}
	if err := r.e.ReadFileAt(ctx, n.Remote.LayerDigest, want, n.Remote.UOffset+off, n.Remote.UOffset+size); err != nil {
		return 0, fmt.Errorf("%s: %w", n.Path, err)
	}
	if len(want) < len(b) {
		return len(want), io.EOF
	}
	return len(want), nil
}

// readAt is ReadNode without a context.
func (r *Reader) readAt(n *common.ClipNode, b []byte, off int64) (int, error) {
	return r.ReadNode(context.Background(), n, b, off)
}

// checkRange checks that file node n's bytes lie inside its layer's
// uncompressed stream.
func (r *Reader) checkRange(ctx context.Context, n *common.ClipNode) error {
	if err := r.e.CheckRange(ctx, n.Remote.LayerDigest, n.Remote.UOffset, n.Remote.ULength); err != nil {
		return fmt.Errorf("%s: %w", n.Path, err)
	}
	return nil
}

// fsNode resolves an fs.FS name (symlinks followed).
func (r *Reader) fsNode(op, name string) (*common.ClipNode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, err := r.Node("/" + name)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// Open implements fs.FS: name is unrooted ("etc/passwd", "." for the
// root); symlinks are followed. The file of a regular file implements
// io.ReaderAt and io.Seeker; a directory's implements fs.ReadDirFile.
func (r *Reader) Open(name string) (fs.File, error) {
	n, err := r.fsNode("open", name)
	if err != nil {
		return nil, err
	}
	f := &file{r: r, n: n, name: path.Base(name)}
	if n.NodeType == common.FileNode && n.Remote != nil {
		f.sr, _ = r.OpenNode(n)
	}
	return f, nil
}

// Stat implements fs.StatFS (symlinks followed).
func (r *Reader) Stat(name string) (fs.FileInfo, error) {
	n, err := r.fsNode("stat", name)
	if err != nil {
		return nil, err
	}
	return fileInfo{n: n, name: path.Base(name)}, nil
}

// ReadFile implements fs.ReadFileFS: the whole content of the regular file
// name (symlinks followed).
func (r *Reader) ReadFile(name string) ([]byte, error) {
	n, err := r.fsNode("read", name)
	if err != nil {
		return nil, err
	}
	if n.NodeType != common.FileNode || n.Remote == nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrNotRegular}
	}
	// Check the range before allocating for it.
	if err := r.checkRange(context.Background(), n); err != nil {
		return nil, err
	}
	b := make([]byte, n.Remote.ULength)
	if _, err := r.readAt(n, b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// ReadDir implements fs.ReadDirFS: the entries of directory name, sorted
// by name; an entry that is a symlink is reported as one.
func (r *Reader) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := r.fsNode("readdir", name)
	if err != nil {
		return nil, err
	}
	if n.NodeType != common.DirNode {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("not a directory")}
	}
	return r.children(n.Path), nil
}

// children lists the nodes directly below the directory at absolute path
// dir: they follow it in path order, before any path that sorts after
// dir + "/".
func (r *Reader) children(dir string) []fs.DirEntry {
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	nodes := r.a.Nodes
	var out []fs.DirEntry
	for i := sort.Search(len(nodes), func(i int) bool { return nodes[i].Path >= prefix }); i < len(nodes); i++ {
		p := nodes[i].Path
		if !strings.HasPrefix(p, prefix) {
			break
		}
		rest := p[len(prefix):]
		if rest == "" || strings.Contains(rest, "/") {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(fileInfo{n: nodes[i], name: rest}))
	}
	// Node paths sort "a-b" before "a/c", so a directory's children are
	// not contiguous in byte order of the full path: sort by name.
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// file is an open file of the Reader's fs.FS.
type file struct {
	r    *Reader
	n    *common.ClipNode
	name string
	sr   *io.SectionReader // regular files
	dir  []fs.DirEntry     // directories, once ReadDir started
	dirN int
}

var (
	_ fs.ReadDirFile = (*file)(nil)
	_ io.ReaderAt    = (*file)(nil)
	_ io.Seeker      = (*file)(nil)
)

func (f *file) Stat() (fs.FileInfo, error) { return fileInfo{n: f.n, name: f.name}, nil }

func (f *file) Read(b []byte) (int, error) {
	if f.sr == nil {
		return 0, &fs.PathError{Op: "read", Path: f.n.Path, Err: ErrNotRegular}
	}
	return f.sr.Read(b)
}

// ReadAt implements io.ReaderAt.
func (f *file) ReadAt(b []byte, off int64) (int, error) {
	if f.sr == nil {
		return 0, &fs.PathError{Op: "read", Path: f.n.Path, Err: ErrNotRegular}
	}
	return f.sr.ReadAt(b, off)
}

// Seek implements io.Seeker.
func (f *file) Seek(off int64, whence int) (int64, error) {
	if f.sr == nil {
		return 0, &fs.PathError{Op: "seek", Path: f.n.Path, Err: ErrNotRegular}
	}
	return f.sr.Seek(off, whence)
}

func (f *file) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (f *file) ReadDir(count int) ([]fs.DirEntry, error) {
	if f.n.NodeType != common.DirNode {
		return nil, &fs.PathError{Op: "readdir", Path: f.n.Path, Err: fmt.Errorf("not a directory")}
	}
	if f.dir == nil {
		f.dir = f.r.children(f.n.Path)
	}
	rest := f.dir[f.dirN:]
	if count <= 0 {
		f.dirN = len(f.dir)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(count, len(rest))]
	f.dirN += len(rest)
	return rest, nil
}

// fileInfo is the fs.FileInfo of a node; Sys returns the *common.ClipNode.
type fileInfo struct {
	n    *common.ClipNode
	name string
}

func (fi fileInfo) Name() string { return fi.name }

func (fi fileInfo) Size() int64 {
	switch {
	case fi.n.NodeType == common.FileNode && fi.n.Remote != nil:
		return fi.n.Remote.ULength
	case fi.n.NodeType == common.SymLinkNode:
		return int64(len(fi.n.Target))
	}
	return int64(fi.n.Attr.Size)
}

func (fi fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.n.Attr.Mode & 0o777)
	if fi.n.Attr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if fi.n.Attr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if fi.n.Attr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch fi.n.NodeType {
	case common.DirNode:
		m |= fs.ModeDir
	case common.SymLinkNode:
		m |= fs.ModeSymlink
	}
	return m
}

func (fi fileInfo) ModTime() time.Time {
	return time.Unix(int64(fi.n.Attr.Mtime), int64(fi.n.Attr.Mtimensec))
}

func (fi fileInfo) IsDir() bool { return fi.n.NodeType == common.DirNode }

func (fi fileInfo) Sys() any { return fi.n }
