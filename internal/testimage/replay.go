package testimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// ReplayNode is one path of the merged file tree computed by Replay.
type ReplayNode struct {
	// Type is "dir", "file" or "symlink".
	Type string
	// Mode is the permission and special bits (mode & 07777).
	Mode int64
	// Uid and Gid are the numeric owner.
	Uid, Gid int
	// Size is the content length for files, len(Linkname) for symlinks and
	// 0 for directories.
	Size int64
	// Linkname is the symlink target, verbatim from the tar header.
	Linkname string
	// SHA256 is the lower-case hex sha256 of a file's content ("" for
	// directories and symlinks).
	SHA256 string
	// ModTime is the modification time from the tar header.
	ModTime time.Time
	// Nlink is, for files and symlinks, the number of paths of the merged
	// tree that are the same inode (hard links); 0 for directories.
	Nlink int
	// Synthesized is true for a directory that no tar entry created: a
	// missing parent, or the root when no layer has an entry for it.
	Synthesized bool
}

// Errors of Replay for trees it deliberately does not model.
var (
	// ErrParentNotDir: an entry's parent path exists and is not a
	// directory. Real extractors (containerd) follow symlinked parents
	// inside the root; Replay does not model that.
	ErrParentNotDir = errors.New("testimage: replay: parent is not a directory")
	// ErrLinkTarget: a hard link whose target is missing in the tree and in
	// the rest of its layer, or is a directory.
	ErrLinkTarget = errors.New("testimage: replay: bad hard link target")
	// ErrRootNotDir: a non-directory entry for the root path.
	ErrRootNotDir = errors.New("testimage: replay: non-directory entry for /")
)

const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
)

type rnode struct {
	ReplayNode
	ino int // identity of the underlying inode (files and symlinks)
}

type rentry struct {
	hdr     *tar.Header
	p       string // clean absolute path
	content []byte
}

// Replay applies uncompressed layer tars, lowest first, the way an OCI
// runtime extracts an image (image-spec layer.md, "Applying Changesets" and
// "Whiteouts"), and returns the merged tree by clean absolute path ("/",
// "/etc", "/etc/passwd", ...). It is deliberately plain and independent of
// ociclip's code: it is the reference that merge, reader and FUSE tests
// compare against. The rules, in the order they are applied per layer:
//
//   - Paths: "/" + path.Clean of the tar name ("./a", "a/", "/a", "b/../a" are
//     all "/a"). The root "/" always exists (0755, 0:0, zero mtime, marked
//     Synthesized) until a layer has a directory entry for it ("./", "/").
//   - Whiteouts first: all whiteout entries of a layer are applied before
//     any other entry of that layer, so they hide only lower-layer content
//     and never an entry of their own layer, wherever it is in the tar.
//   - Then the other entries, in tar order.
//
// Replay does not model: symlinked parent directories (ErrParentNotDir),
// xattrs, device numbers. Device and FIFO entries are not in the result.
func Replay(layerTars [][]byte) (map[string]ReplayNode, error) {
	tree := map[string]*rnode{
		"/": {ReplayNode: ReplayNode{Type: "dir", Mode: 0o755, Synthesized: true}},
	}
	nextIno := 1
	for li, lt := range layerTars {
		entries, err := readEntries(lt)
		if err != nil {
			return nil, fmt.Errorf("testimage: replay: layer %d: %w", li, err)
		}

		// layer.md, Whiteouts: "Whiteout files MUST only apply to resources
		// in lower/parent layers. Files that are present in the same layer
		// as a whiteout file can only be hidden by whiteout files in
		// subsequent layers." So apply this layer's whiteouts to the tree as
		// it was after the layer below, before any entry of this layer.
		var rest []rentry
		for _, e := range entries {
			base := path.Base(e.p)
			if e.p == "/" || !strings.HasPrefix(base, whPrefix) {
				rest = append(rest, e)
				continue
			}
			dir := path.Dir(e.p)
			if base == whOpaque {
				// layer.md, Opaque Whiteout: ".wh..wh..opq" in a directory
				// means all siblings (the directory's lower-layer children)
				// are hidden; the directory itself stays.
				removeChildren(tree, dir)
				continue
			}
			// layer.md, Whiteouts: ".wh.NAME" means NAME is removed, and
			// with it everything below NAME if it is a directory.
			name := strings.TrimPrefix(base, whPrefix)
			if name == "" {
				continue
			}
			removeTree(tree, path.Join(dir, name))
			// The whiteout file itself is never part of the tree.
		}

		var deferred []rentry
		for _, e := range rest {
			ok, err := apply(tree, e, &nextIno)
			if err != nil {
				return nil, fmt.Errorf("testimage: replay: layer %d: %q: %w", li, e.hdr.Name, err)
			}
			if !ok {
				deferred = append(deferred, e)
			}
		}
		// A hard link whose target comes later in the same layer. Real
		// extractors fail on it; ociclip resolves hard links per layer
		// (DESIGN.md, rule 6), so the reference resolves it against the
		// layer's final state.
		for _, e := range deferred {
			ok, err := apply(tree, e, &nextIno)
			if err != nil {
				return nil, fmt.Errorf("testimage: replay: layer %d: %q: %w", li, e.hdr.Name, err)
			}
			if !ok {
				return nil, fmt.Errorf("testimage: replay: layer %d: %q -> %q: %w", li, e.hdr.Name, e.hdr.Linkname, ErrLinkTarget)
			}
		}
	}

	// Nlink: the number of surviving paths of each inode.
	links := map[int]int{}
	for _, n := range tree {
		if n.Type != "dir" {
			links[n.ino]++
		}
	}
	out := make(map[string]ReplayNode, len(tree))
	for p, n := range tree {
		if n.Type != "dir" {
			n.Nlink = links[n.ino]
		}
		out[p] = n.ReplayNode
	}
	return out, nil
}

// readEntries reads all entries of one tar stream with their content.
func readEntries(b []byte) ([]rentry, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	var out []rentry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", h.Name, err)
		}
		out = append(out, rentry{hdr: h, p: CleanPath(h.Name), content: content})
	}
}

// CleanPath is the path rule of Replay: "/" + path.Clean(name), so that "",
// ".", "./" and "/" are "/", and "./a/", "a//b/..", "/a" are "/a".
func CleanPath(name string) string {
	return path.Clean("/" + name)
}

// apply applies one non-whiteout entry. It returns false (and changes
// nothing) for a hard link whose target does not exist yet.
func apply(tree map[string]*rnode, e rentry, nextIno *int) (bool, error) {
	h := e.hdr
	n := &rnode{ReplayNode: ReplayNode{
		Mode:    h.Mode & 0o7777,
		Uid:     h.Uid,
		Gid:     h.Gid,
		ModTime: h.ModTime,
	}}
	switch h.Typeflag {
	case tar.TypeDir:
		n.Type = "dir"
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		// Regular files; Go's tar reader expands sparse files, so content
		// is the logical file content.
		n.Type = "file"
		n.Size = int64(len(e.content))
		n.SHA256 = sha256Hex(e.content)
	case tar.TypeSymlink:
		n.Type = "symlink"
		n.Linkname = h.Linkname
		n.Size = int64(len(h.Linkname))
	case tar.TypeLink:
		// A hard link is another name of the target's inode: same type,
		// content, mode, owner and times (a link to a symlink is a
		// symlink). The target is looked up in the tree as it is at this
		// entry.
		t, ok := tree[CleanPath(h.Linkname)]
		if !ok {
			return false, nil
		}
		if t.Type == "dir" {
			return false, ErrLinkTarget
		}
		n = &rnode{ReplayNode: t.ReplayNode, ino: t.ino}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// Devices and FIFOs are not part of the result, but they do occupy
		// their path: whatever a lower layer had there is replaced.
		if e.p == "/" {
			return true, ErrRootNotDir
		}
		if err := makeParents(tree, e.p, h.ModTime); err != nil {
			return true, err
		}
		removeTree(tree, e.p)
		return true, nil
	default:
		// PAX global headers and unknown types carry no file.
		return true, nil
	}

	if e.p == "/" {
		if n.Type != "dir" {
			return true, ErrRootNotDir
		}
		// An entry for the root ("./", "/") sets the root's attributes.
		tree["/"] = n
		return true, nil
	}
	// Missing parents are created as directories (0755, 0:0, the child's
	// mtime): a tar may omit them (umoci writes only changed paths).
	if err := makeParents(tree, e.p, h.ModTime); err != nil {
		return true, err
	}
	if old, ok := tree[e.p]; ok && old.Type == "dir" {
		if n.Type == "dir" {
			// layer.md, Changes: a directory entry over an existing
			// directory changes its attributes; its contents are kept
			// (directories of different layers merge).
			tree[e.p] = n
			return true, nil
		}
		// A non-directory replacing a directory replaces the whole subtree.
		removeTree(tree, e.p)
	}
	// An entry replaces whatever was at its path (layer.md: "Additions and
	// Modifications" are applied by extracting the entry over the lower
	// content).
	if n.Type != "dir" && h.Typeflag != tar.TypeLink {
		*nextIno++
		n.ino = *nextIno
	}
	tree[e.p] = n
	return true, nil
}

// makeParents creates the missing ancestors of p as directories.
func makeParents(tree map[string]*rnode, p string, mtime time.Time) error {
	var missing []string
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		n, ok := tree[d]
		if ok {
			if n.Type != "dir" {
				return fmt.Errorf("%w: %s", ErrParentNotDir, d)
			}
			break
		}
		missing = append(missing, d)
	}
	for _, d := range missing {
		tree[d] = &rnode{ReplayNode: ReplayNode{Type: "dir", Mode: 0o755, ModTime: mtime, Synthesized: true}}
	}
	return nil
}

// removeTree deletes p and everything below it.
func removeTree(tree map[string]*rnode, p string) {
	if p == "/" {
		removeChildren(tree, p)
		return
	}
	delete(tree, p)
	removeChildren(tree, p)
}

// removeChildren deletes everything below directory d, keeping d.
func removeChildren(tree map[string]*rnode, d string) {
	prefix := d + "/"
	if d == "/" {
		prefix = "/"
	}
	for k := range tree {
		if k != d && strings.HasPrefix(k, prefix) {
			delete(tree, k)
		}
	}
}

// SortedPaths returns the paths of a Replay result in ascending order.
func SortedPaths(tree map[string]ReplayNode) []string {
	ps := make([]string, 0, len(tree))
	for p := range tree {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}
