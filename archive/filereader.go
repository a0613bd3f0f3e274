package archive

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/tarindex"
)

// Errors of the file reader; returned errors wrap them.
var (
	// ErrNotFound: no node at that path (fs.ErrNotExist matches too).
	ErrNotFound = fmt.Errorf("no such file: %w", fs.ErrNotExist)
	// ErrNotRegular: the path names a directory (or a symlink when links are
	// not followed), which has no bytes to read.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlinkLoop: too many symbolic links while resolving a path.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrVerify: bytes inflated through the index do not match the checksums
	// recorded when the layer was indexed (a wrong checkpoint, a changed
	// blob, a corrupt index). The reader never returns such bytes.
	ErrVerify = errors.New("layer data does not match the index")
)

// maxSymlinks is the resolution limit, as Linux's MAXSYMLINKS.
const maxSymlinks = 40

// castagnoli is the CRC-32C table used for chunk checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BlobOpener gives random access to a layer blob by its digest.
type BlobOpener interface {
	OpenLayer(digest string) (io.ReaderAt, int64, error)
}

// FileReader reads files of an archive through its index: for a gzip layer
// it inflates from the nearest resumable checkpoint before the data (at most
// one span plus one checksum chunk), for a zstd layer it decodes from the
// start of the frame holding the data, and for an uncompressed layer it reads
// the bytes in place. Every checksum chunk it inflates or reads is verified
// against the CRC-32C recorded at indexing time when the archive has them.
// It is safe for concurrent use.
type FileReader struct {
	a     *Archive
	blobs BlobOpener

	mu     sync.Mutex
	layers map[string]*layerAccess

	// Inflated counts the uncompressed bytes produced by decompression, for
	// tests and benchmarks that check reads stay within one span.
	inflated int64
}

type layerAccess struct {
	digest string
	comp   tarindex.Compression
	blob   io.ReaderAt
	size   int64
	ext    *LayerExtension
	points []tarindex.ResumePoint // sorted by UOff
	frames []common.ZstdFrame     // sorted by UOff
}

// NewFileReader returns a reader of a's files whose layer bytes come from blobs.
func NewFileReader(a *Archive, blobs BlobOpener) *FileReader {
	return &FileReader{a: a, blobs: blobs, layers: map[string]*layerAccess{}}
}

// Inflated returns the number of uncompressed bytes decompressed so far.
func (r *FileReader) Inflated() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflated
}

// Lstat returns the node at the clean absolute path p without following a
// final symlink (intermediate symlinks are followed).
func (r *FileReader) Lstat(p string) (*common.ClipNode, error) {
	return r.resolve(p, false)
}

// Stat returns the node at p, following symlinks as a filesystem would.
func (r *FileReader) Stat(p string) (*common.ClipNode, error) {
	return r.resolve(p, true)
}

func (r *FileReader) get(p string) *common.ClipNode {
	nodes := r.a.Nodes
	i := sort.Search(len(nodes), func(i int) bool { return nodes[i].Path >= p })
	if i < len(nodes) && nodes[i].Path == p {
		return nodes[i]
	}
	return nil
}

// resolve walks p component by component, substituting symlink targets
// (absolute ones from the root, relative ones from their directory).
func (r *FileReader) resolve(p string, followLast bool) (*common.ClipNode, error) {
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
			if links > maxSymlinks {
				return nil, fmt.Errorf("%s: %w", orig, ErrSymlinkLoop)
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

// ReadFile returns the whole content of the file at p (symlinks followed).
func (r *FileReader) ReadFile(p string) ([]byte, error) {
	n, err := r.Stat(p)
	if err != nil {
		return nil, err
	}
	if n.NodeType != common.FileNode || n.Remote == nil {
		return nil, fmt.Errorf("%s: %w", p, ErrNotRegular)
	}
	// Check the range before allocating for it.
	la, err := r.layer(n.Remote.LayerDigest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := la.checkRange(n.Remote.UOffset, n.Remote.ULength); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	b := make([]byte, n.Remote.ULength)
	if _, err := r.ReadAt(n, b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// ReadAt reads len(b) bytes of file node n from offset off, like
// io.ReaderAt: fewer bytes only at the end of the file, with io.EOF.
func (r *FileReader) ReadAt(n *common.ClipNode, b []byte, off int64) (int, error) {
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
	la, err := r.layer(n.Remote.LayerDigest)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.Path, err)
	}
	if err := la.checkRange(n.Remote.UOffset, n.Remote.ULength); err != nil {
		return 0, fmt.Errorf("%s: %w", n.Path, err)
	}
	if err := r.readLayer(la, want, n.Remote.UOffset+off); err != nil {
		return 0, fmt.Errorf("%s: %w", n.Path, err)
	}
	if len(want) < len(b) {
		return len(want), io.EOF
	}
	return len(want), nil
}

// layer returns (and caches) random-access state for a layer.
func (r *FileReader) layer(d string) (*layerAccess, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if la := r.layers[d]; la != nil {
		return la, nil
	}
	blob, size, err := r.blobs.OpenLayer(d)
	if err != nil {
		return nil, err
	}
	la := &layerAccess{digest: d, blob: blob, size: size, comp: tarindex.CompressionNone}
	if r.a.Extension != nil {
		for i := range r.a.Extension.Layers {
			if r.a.Extension.Layers[i].Digest == d {
				la.ext = &r.a.Extension.Layers[i]
			}
		}
	}
	st := &r.a.Storage
	switch {
	case la.ext != nil:
		switch la.ext.Compression {
		case "gzip":
			la.comp = tarindex.CompressionGzip
		case "zstd":
			la.comp = tarindex.CompressionZstd
		}
	case st.GzipIdxByLayer[d] != nil:
		la.comp = tarindex.CompressionGzip
	case st.ZstdIdxByLayer[d] != nil:
		la.comp = tarindex.CompressionZstd
	}
	if la.ext != nil && la.ext.Size != size {
		return nil, fmt.Errorf("%w: layer %s is %d bytes, it was %d when indexed", ErrVerify, d, size, la.ext.Size)
	}
	if la.ext != nil {
		for _, p := range la.ext.Points {
			la.points = append(la.points, tarindex.ResumePoint{COff: p.COff, BitOffset: p.BitOffset, UOff: p.UOff, Window: p.Window, MemberStart: p.MemberStart})
		}
		sort.Slice(la.points, func(i, j int) bool { return la.points[i].UOff < la.points[j].UOff })
	}
	if z := st.ZstdIdxByLayer[d]; z != nil {
		la.frames = append([]common.ZstdFrame(nil), z.Frames...)
		sort.Slice(la.frames, func(i, j int) bool { return la.frames[i].UOff < la.frames[j].UOff })
	}
	if la.comp == tarindex.CompressionZstd && len(la.frames) == 0 {
		return nil, fmt.Errorf("%w: zstd layer %s has no frame index", ErrVerify, d)
	}
	r.layers[d] = la
	return la, nil
}

// checkRange fails with ErrVerify when [uoff, uoff+n) is not inside the
// layer's uncompressed stream, as far as its length is known (recorded in
// the extension, or the blob's size for an uncompressed layer).
func (la *layerAccess) checkRange(uoff, n int64) error {
	size := int64(-1)
	switch {
	case la.ext != nil:
		size = la.ext.USize
	case la.comp == tarindex.CompressionNone:
		size = la.size
	}
	if uoff < 0 || n < 0 || size >= 0 && (uoff > size || n > size-uoff) {
		return fmt.Errorf("%w: layer %s: bytes %d+%d outside the %d-byte uncompressed stream", ErrVerify, la.digest, uoff, n, size)
	}
	return nil
}

// chunkSpan widens [start, end) of the uncompressed stream to whole checksum
// chunks when the layer has chunk checksums.
func (la *layerAccess) chunkSpan(start, end int64) (int64, int64) {
	if la.ext == nil || la.ext.ChunkSize <= 0 || len(la.ext.ChunkCRCs) == 0 {
		return start, end
	}
	cs := la.ext.ChunkSize
	s := start / cs * cs
	e := (end + cs - 1) / cs * cs
	if la.ext.USize > 0 && e > la.ext.USize {
		e = la.ext.USize
	}
	return s, e
}

// readLayer fills want with the uncompressed layer bytes at uoff.
func (r *FileReader) readLayer(la *layerAccess, want []byte, uoff int64) error {
	start, end := la.chunkSpan(uoff, uoff+int64(len(want)))
	var src io.Reader
	var srcOff int64 // uncompressed offset of src's first byte
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	switch la.comp {
	case tarindex.CompressionNone:
		src, srcOff = io.NewSectionReader(la.blob, start, la.size-start), start
	case tarindex.CompressionGzip:
		var rp tarindex.ResumePoint
		if i := sort.Search(len(la.points), func(i int) bool { return la.points[i].UOff > start }) - 1; i >= 0 {
			rp = la.points[i]
		}
		rc, err := tarindex.OpenAt(la.blob, la.size, rp)
		if err != nil {
			return err
		}
		closers = append(closers, rc)
		src, srcOff = &countReader{r: rc, n: &r.inflated, mu: &r.mu}, rp.UOff
	case tarindex.CompressionZstd:
		i := sort.Search(len(la.frames), func(i int) bool { return la.frames[i].UOff > start }) - 1
		if i < 0 {
			return fmt.Errorf("%w: offset %d before the first zstd frame", ErrVerify, start)
		}
		srcOff = la.frames[i].UOff
		fs := &frameSeq{blob: la.blob, frames: la.frames[i:], end: end}
		closers = append(closers, fs)
		src = &countReader{r: fs, n: &r.inflated, mu: &r.mu}
	}
	if _, err := io.CopyN(io.Discard, src, start-srcOff); err != nil {
		return fmt.Errorf("%w: skipping to offset %d: %v", ErrVerify, start, err)
	}
	return la.copyVerified(src, start, end, want, uoff)
}

// copyVerified reads [start, end) from src, checks each whole checksum chunk
// and copies the bytes at [uoff, uoff+len(want)) into want.
func (la *layerAccess) copyVerified(src io.Reader, start, end int64, want []byte, uoff int64) error {
	var cs int64 = 1 << 16
	check := la.ext != nil && la.ext.ChunkSize > 0 && len(la.ext.ChunkCRCs) > 0
	if check {
		cs = la.ext.ChunkSize
	}
	buf := make([]byte, cs)
	for pos := start; pos < end; {
		n := cs - pos%cs
		if n > end-pos {
			n = end - pos
		}
		chunk := buf[:n]
		if _, err := io.ReadFull(src, chunk); err != nil {
			return fmt.Errorf("%w: reading layer %s at %d: %v", ErrVerify, la.digest, pos, err)
		}
		if check {
			idx := pos / cs
			if idx >= int64(len(la.ext.ChunkCRCs)) {
				return fmt.Errorf("%w: layer %s: offset %d beyond the indexed stream", ErrVerify, la.digest, pos)
			}
			if got := crc32.Checksum(chunk, castagnoli); got != la.ext.ChunkCRCs[idx] {
				return fmt.Errorf("%w: layer %s chunk %d (bytes %d-%d): crc32c %08x, indexed %08x", ErrVerify, la.digest, idx, pos, pos+n, got, la.ext.ChunkCRCs[idx])
			}
		}
		// Copy the overlap of [pos, pos+n) with [uoff, uoff+len(want)).
		lo, hi := max(pos, uoff), min(pos+n, uoff+int64(len(want)))
		if lo < hi {
			copy(want[lo-uoff:hi-uoff], chunk[lo-pos:hi-pos])
		}
		pos += n
	}
	return nil
}

// countReader adds the bytes read to a shared counter.
type countReader struct {
	r  io.Reader
	n  *int64
	mu *sync.Mutex
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	*c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

// frameSeq reads the zstd frames that start before end one after the
// other, opening each only when the previous one is exhausted, so that a
// hostile frame index cannot make a read open thousands of decoders at once.
type frameSeq struct {
	blob   io.ReaderAt
	frames []common.ZstdFrame
	end    int64
	cur    io.ReadCloser
}

func (s *frameSeq) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			if len(s.frames) == 0 || s.frames[0].UOff >= s.end {
				return 0, io.EOF
			}
			fr, err := tarindex.OpenFrame(s.blob, s.frames[0])
			if err != nil {
				return 0, err
			}
			s.cur, s.frames = fr, s.frames[1:]
		}
		n, err := s.cur.Read(p)
		if err == io.EOF {
			err = s.cur.Close()
			s.cur = nil
			if err != nil || n > 0 {
				return n, err
			}
			continue
		}
		return n, err
	}
}

func (s *frameSeq) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}
