package archive

import (
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ociclip/ociclip/limits"
	"github.com/ociclip/ociclip/tarindex"
)

// Sentinel errors of the merge; returned errors wrap them.
var (
	// ErrBadWhiteout: a whiteout names the image root, or an empty or invalid name.
	ErrBadWhiteout = errors.New("invalid whiteout")
	// ErrLimit: a MergeLimits value was exceeded (limits.ErrLimit; the
	// error is a *limits.Error that names it).
	ErrLimit = limits.ErrLimit
	// ErrHardlink: a hard link whose target does not exist, is a directory, or
	// forms a cycle.
	ErrHardlink = errors.New("invalid hard link")
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// LayerEntries is the input of Merge for one layer: its compressed digest
// (used for RemoteRef.LayerDigest and for inode numbers) and its entries in
// tar order.
type LayerEntries struct {
	Digest  string
	Entries []tarindex.Entry
}

// MergeStats counts what the merge did.
type MergeStats struct {
	Files, Dirs, Symlinks int // nodes of each type in the result (root included in Dirs)
	HardLinks             int // file or symlink nodes that are extra names of another node
	Whiteouts             int // whiteout and opaque markers applied
	SynthesizedDirs       int // parent directories created because no layer had them
	SkippedDevices        int // character and block devices left out (clip cannot describe them)
	SkippedFIFOs          int // named pipes left out
}

// tnode is a node of the merge tree.
type tnode struct {
	clip     *common.ClipNode
	children map[string]*tnode // directories only
	group    *linkGroup        // files and symlinks: the set of names sharing the inode
	synth    bool              // a directory no layer had: created as a parent
}

// linkGroup ties together all names of one hard-linked inode so that Nlink
// can be counted on the final tree.
type linkGroup struct {
	names int
	// meta is the last hard-link entry applied to the inode: as in
	// containerd's applier, which chowns, chmods and sets the times of
	// the path it has just linked, its owner, permission bits (not a
	// symlink's) and times become every name's.
	meta *tarindex.Entry
}

// MergeLimits bound the tree Merge builds from hostile layers, which can be
// much larger than the tar entries: every missing parent directory is
// synthesized as a node holding its full path, and symlinks in parent paths
// are resolved, so that a node's path can be longer than any tar name. The
// merge applies MaxNodes (default limits.DefaultMaxNodes) and MaxPathLen
// (default limits.DefaultMaxPathLen): a node's path length after symlinks
// in its parent path are resolved, and the work of one resolution
// (MaxPathLen components walked, 4 * MaxPathLen directory lookups through
// symlinks whose targets have "..").
type MergeLimits = limits.Limits

func mergeDefaults(l MergeLimits) MergeLimits {
	l = l.Normalized()
	if l.MaxNodes <= 0 {
		l.MaxNodes = limits.DefaultMaxNodes
	}
	return l
}

// merger applies layers in order on a tree rooted at "/".
type merger struct {
	root  *tnode
	stats MergeStats
	lim   MergeLimits
	nodes int // nodes created, for MaxNodes
}

// created counts a new node at p against the limits.
func (m *merger) created(p string) error {
	if len(p) > m.lim.MaxPathLen {
		return limits.New("MaxPathLen", int64(m.lim.MaxPathLen), fmt.Sprintf("node path of %d bytes (%.60q...) after resolving symlinks in its parents", len(p), p))
	}
	if m.nodes++; m.nodes > m.lim.MaxNodes {
		return limits.New("MaxNodes", int64(m.lim.MaxNodes), "the merged tree has more nodes (synthesized parent directories included)")
	}
	return nil
}

// Merge applies the layers in order with OCI overlay semantics and returns
// clip's node list sorted by path, the root "/" first. rootTime sets the
// root's times when no layer carries a "./" entry (use config.created for
// reproducible output).
//
// Rules, where ociclip deliberately differs from clip a2a14fb (see
// CLIP_V2_FORMAT.md): zero and pre-1970 times become 0; mode keeps 07777;
// missing parents are synthesized; hard links are resolved in any order,
// keep the type of their target and carry a real link count; a "./" entry
// is merged into the root, which keeps inode 1; whiteouts apply to lower
// layers only, wherever they stand in the tar, and an opaque marker at the
// root clears the root; a non-directory that replaces a directory removes
// the directory's subtree; device nodes and FIFOs are skipped (and counted)
// but still hide what lower layers had at their path.
//
// Merge applies the default MergeLimits; see MergeWithLimits.
func Merge(layers []LayerEntries, rootTime time.Time) ([]*common.ClipNode, MergeStats, error) {
	return MergeWithLimits(layers, rootTime, MergeLimits{})
}

// MergeWithLimits is Merge with limits on the tree it builds; exceeding
// one is an error wrapping ErrLimit that names the limit.
func MergeWithLimits(layers []LayerEntries, rootTime time.Time, lim MergeLimits) ([]*common.ClipNode, MergeStats, error) {
	m := &merger{root: &tnode{children: map[string]*tnode{}}, lim: mergeDefaults(lim)}
	sec, nsec := unixTime(rootTime)
	m.root.clip = &common.ClipNode{
		Path:     "/",
		NodeType: common.DirNode,
		Attr: fuse.Attr{
			Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2,
			Atime: sec, Atimensec: nsec, Mtime: sec, Mtimensec: nsec, Ctime: sec, Ctimensec: nsec,
		},
	}
	for i := range layers {
		if err := m.applyLayer(&layers[i]); err != nil {
			return nil, MergeStats{}, fmt.Errorf("%s: %w", LayerName(i+1, len(layers), layers[i].Digest), err)
		}
	}
	return m.finish(), m.stats, nil
}

// resolved is what a hard link entry turns into.
type resolved struct {
	attr   fuse.Attr
	remote *common.RemoteRef
	kind   common.ClipNodeType
	target string
	group  *linkGroup
	// later: step 1 found the target in the link's own tar, which is
	// where applyLink's fallback looks only for one later in the tar (an
	// earlier one is in the tree): containerd has no rule for it, and the
	// target keeps its own metadata, as its header comes after the link.
	later bool
}

func (m *merger) applyLayer(l *LayerEntries) error {
	// Last occurrence of each path in this layer, for hard link targets that
	// come later in the tar.
	last := make(map[string]int, len(l.Entries))
	for i := range l.Entries {
		last[l.Entries[i].Path] = i
	}

	// 1. Resolve hard links by their lexically clean target against this
	// layer (any position) and the lower layers as they were before this
	// layer's whiteouts. This is the fallback of step 3, which first
	// resolves each link as containerd does, when it is applied; an error
	// here counts only if that fails too.
	links := map[int]resolved{}
	linkErrs := map[int]error{}
	groups := map[int]*linkGroup{} // entry index of a link target in this layer -> group
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Kind != tarindex.KindHardlink || isWhiteout(e.Path) {
			continue
		}
		if _, done := links[i]; done {
			continue // resolved on the way from an earlier link
		}
		r, err := m.resolveLink(l, last, groups, links, i)
		if err != nil {
			linkErrs[i] = err
			continue
		}
		links[i] = r
	}

	// 2. Whiteouts, against lower layers only.
	for i := range l.Entries {
		e := &l.Entries[i]
		if !isWhiteout(e.Path) || isAufsMeta(e.Path) {
			continue
		}
		if err := m.whiteout(e.Path, e.AbsName); err != nil {
			return err
		}
		m.stats.Whiteouts++
	}

	// 3. This layer's entries in tar order.
	for i := range l.Entries {
		e := &l.Entries[i]
		if isWhiteout(e.Path) || isAufsMeta(e.Path) {
			continue
		}
		if e.Path == "/" {
			if e.Kind == tarindex.KindDir {
				m.mergeRoot(e)
			}
			continue
		}
		var n *tnode
		switch e.Kind {
		case tarindex.KindChar, tarindex.KindBlock, tarindex.KindFIFO:
			if e.Kind == tarindex.KindFIFO {
				m.stats.SkippedFIFOs++
			} else {
				m.stats.SkippedDevices++
			}
			// Nothing can be shown at this path, but what lower layers had
			// there is hidden all the same (its parent resolved as an
			// entry's: through symlinks).
			if _, err := m.detach(e.Path, e.AbsName); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
			continue
		case tarindex.KindDir:
			n = &tnode{clip: dirNode(e, l.Digest)}
		case tarindex.KindFile:
			g := groups[i]
			if g == nil {
				g = &linkGroup{}
			}
			n = &tnode{clip: fileNode(e, l.Digest), group: g}
		case tarindex.KindSymlink:
			g := groups[i]
			if g == nil {
				g = &linkGroup{}
			}
			n = &tnode{clip: symlinkNode(e, l.Digest), group: g}
		case tarindex.KindHardlink:
			r, at, err := m.applyLink(e, links, linkErrs, i)
			if err != nil {
				return err
			}
			c := &common.ClipNode{Path: at, NodeType: r.kind, Attr: r.attr, Target: r.target}
			if r.remote != nil {
				rc := *r.remote
				c.Remote = &rc
			}
			n = &tnode{clip: c, group: r.group}
			if !r.later {
				r.group.meta = e
			}
		default:
			return fmt.Errorf("entry %q: unknown kind %d", e.Path, e.Kind)
		}
		if err := m.put(n, l.Digest, e.AbsName); err != nil {
			return err
		}
	}
	return nil
}

// applyLink resolves the hard link entry e (index i of its layer) when it
// is applied, as containerd's applier does: the name's old node is removed
// first (containerd's RemoveAll), then the target's parent path is resolved
// by rootPath (symlinks followed inside the root, ".." stopping at the
// root, absolute targets from the root), its last component joined
// lexically and looked up without following a final symlink (link(2)).
// When that finds no file or symlink, the link resolves as ociclip always
// did (step 1 of applyLayer: a target later in the same tar, or one the
// same layer whites out), else it is an error. at is the path to put the
// link at: e.Path with its parent resolved before the removal, as
// containerd resolves it once (the removed node may have been on the way).
func (m *merger) applyLink(e *tarindex.Entry, links map[int]resolved, linkErrs map[int]error, i int) (resolved, string, error) {
	at, err := m.detach(e.Path, e.AbsName)
	if err != nil {
		return resolved{}, "", fmt.Errorf("%s: %w", e.Path, err)
	}
	n, err := m.hardlinkTarget(e.Linkname)
	if err != nil {
		return resolved{}, "", fmt.Errorf("%w: %q -> %q: %w", ErrHardlink, e.Path, e.Linkname, err)
	}
	if n != nil && n.children == nil {
		return resolved{attr: n.clip.Attr, remote: n.clip.Remote, kind: n.clip.NodeType, target: n.clip.Target, group: n.group}, at, nil
	}
	if cl := cleanLinkname(e.Linkname); cl == e.Path || strings.HasPrefix(cl, e.Path+"/") {
		return resolved{}, "", fmt.Errorf("%w: %q -> %q: the link replaces its own target", ErrHardlink, e.Path, e.Linkname)
	}
	if r, ok := links[i]; ok {
		return r, at, nil
	}
	if n != nil {
		return resolved{}, "", fmt.Errorf("%w: %q -> %q: target is a directory", ErrHardlink, e.Path, e.Linkname)
	}
	if err := linkErrs[i]; err != nil {
		return resolved{}, "", err
	}
	return resolved{}, "", fmt.Errorf("%w: %q -> %q: target does not exist", ErrHardlink, e.Path, e.Linkname)
}

// detach removes the node at the clean path p and its subtree (symlinks in
// its parents followed as in put): what a device or FIFO hides, and what
// a hard link replaces before it resolves its target. It returns p with
// its parent resolved; p itself when the parent does
// not exist yet (then nothing was removed, and put resolves it alike).
func (m *merger) detach(p string, abs bool) (string, error) {
	dir, name := path.Split(p)
	d, real, err := m.walkDir(path.Clean(dir), abs, false, "", 0, 0)
	if err != nil || d == nil {
		return p, err
	}
	delete(d.children, name)
	return path.Join(real, name), nil
}

// hardlinkTarget returns the node a hard link to linkname (the tar's
// Linkname, verbatim) names, or nil: containerd's hardlinkRootPath. The
// parent part is resolved by rootPath, the base joined lexically (so
// "x/.." names x's parent and "x/" the resolved x), and the result looked
// up without following a final symlink.
func (m *merger) hardlinkTarget(linkname string) (*tnode, error) {
	dir, base := path.Split(linkname)
	if base != "" && base != "." && base != ".." && !strings.Contains(dir, "..") {
		// Fast path: a target whose parents are plain directories needs
		// no resolution (the common case, and every real image's).
		clean := path.Clean("/" + dir)
		if d, real, err := m.walk(clean, false, kernelWalk, "", 0, 0); err == nil && d != nil && real == clean {
			return d.children[base], nil
		}
	}
	rd, err := m.rootPath(dir)
	if err != nil {
		return nil, err
	}
	return m.lstat(path.Join(rd, base))
}

// lstat returns the node at the clean absolute path p without following a
// final symlink, or nil when there is none. Symlinks in the parents are
// followed as the kernel does (inside the root here).
func (m *merger) lstat(p string) (*tnode, error) {
	if p == "/" {
		return m.root, nil
	}
	dir, name := path.Split(p)
	d, _, err := m.walk(path.Clean(dir), false, kernelWalk, "", 0, 0)
	if err != nil || d == nil {
		return nil, err
	}
	return d.children[name], nil
}

// maxRootPathLinks is the number of symlinks rootPath follows before it
// gives up, as containerd's (continuity's fs.RootPath: more than 255).
const maxRootPathLinks = 255

// rootPath is continuity's fs.RootPath (which containerd's applier uses for
// entry parents and hard-link targets) on the merge tree: it resolves p
// (relative to the root, any form) to a clean absolute path with every
// existing component a non-symlink. Symlinks are followed inside the root,
// absolute targets from the root, ".." stops at the root; a component that
// does not exist is taken as it is. Note that, as in continuity, ".." after
// a symlink target's component is applied lexically to the target text,
// not to the resolved path. The work is bounded by MaxPathLen (ErrLimit)
// and more than maxRootPathLinks symlinks are ErrSymlinkLoop.
func (m *merger) rootPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	w := rootPathWalk{m: m, orig: p}
	for {
		before := w.links
		np, err := w.walkLinks(p)
		if err != nil {
			return "", err
		}
		p = np
		if before == w.links {
			np = path.Join("/", np)
			if p == np {
				return np, nil
			}
			p = np
		}
	}
}

// rootPathWalk is the state of one rootPath call.
type rootPathWalk struct {
	m     *merger
	orig  string
	links int               // symlinks followed
	steps int               // directory lookups, bounded by 4 * MaxPathLen
	dirs  map[string]*tnode // clean path -> directory there (nil: none)
}

// dir returns the directory at the clean absolute path d, following
// symlinks in it as the kernel does, or nil. Results are memoized, so that
// the lookups of one rootPath cost one step per distinct directory.
func (w *rootPathWalk) dir(d string) (*tnode, error) {
	if d == "/" {
		return w.m.root, nil
	}
	if n, ok := w.dirs[d]; ok {
		return n, nil
	}
	if w.steps++; w.steps > 4*w.m.lim.MaxPathLen {
		return nil, w.m.walkLimitErr(w.orig)
	}
	parent, err := w.dir(path.Dir(d))
	if err != nil {
		return nil, err
	}
	var n *tnode
	if parent != nil {
		switch c := parent.children[path.Base(d)]; {
		case c == nil || c.children != nil:
			n = c
		case c.clip.NodeType == common.SymLinkNode:
			// An unresolved symlink in a target's text: the kernel walk
			// (itself bounded by MaxPathLen) counts as d's components.
			if w.steps += strings.Count(d, "/"); w.steps > 4*w.m.lim.MaxPathLen {
				return nil, w.m.walkLimitErr(w.orig)
			}
			// A loop there is taken as no directory: containerd's lstat
			// of the same text goes through the kernel, which follows
			// an absolute symlink out of the extraction root, to the
			// host's files, and finds none rather than a loop.
			if n, _, err = w.m.walk(d, false, kernelWalk, "", 0, 0); errors.Is(err, ErrSymlinkLoop) {
				n, err = nil, nil
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if w.dirs == nil {
		w.dirs = map[string]*tnode{}
	}
	w.dirs[d] = n
	return n, nil
}

// walkLink is continuity's walkLink: the target of p if it is a symlink.
func (w *rootPathWalk) walkLink(p string) (string, bool, error) {
	if w.links > maxRootPathLinks {
		return "", false, fmt.Errorf("%w resolving %s", ErrSymlinkLoop, w.orig)
	}
	p = path.Join("/", p)
	if p == "/" {
		return p, false, nil
	}
	d, err := w.dir(path.Dir(p))
	if err != nil {
		return "", false, err
	}
	var n *tnode
	if d != nil {
		n = d.children[path.Base(p)]
	}
	if n == nil || n.clip.NodeType != common.SymLinkNode {
		return p, false, nil
	}
	w.links++
	return n.clip.Target, true, nil
}

// walkLinks is continuity's walkLinks.
func (w *rootPathWalk) walkLinks(p string) (string, error) {
	dir, file := path.Split(p)
	switch {
	case dir == "":
		np, _, err := w.walkLink(file)
		return np, err
	case file == "":
		if dir == "/" {
			return dir, nil
		}
		return w.walkLinks(dir[:len(dir)-1])
	default:
		newdir, err := w.walkLinks(dir)
		if err != nil {
			return "", err
		}
		np, islink, err := w.walkLink(path.Join(newdir, file))
		if err != nil || !islink || path.IsAbs(np) {
			return np, err
		}
		return path.Join(newdir, np), nil
	}
}

// hasDotDot reports whether the slash-separated p has a ".." component.
func hasDotDot(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../")
}

// cleanLinkname is a hard link's target as a clean absolute path, ".."
// stopping at the root, without resolving symlinks.
func cleanLinkname(l string) string { return path.Clean("/" + l) }

// resolveLink follows the hard link at entry index i of layer l to a file or
// symlink, in this layer (any position) or below. The hard links of this
// layer passed on the way get the same result in links, and a link found
// there ends the walk, so that resolving a chain of n links costs O(n), not
// O(n^2).
func (m *merger) resolveLink(l *LayerEntries, last map[string]int, groups map[int]*linkGroup, links map[int]resolved, i int) (resolved, error) {
	e := &l.Entries[i]
	target := cleanLinkname(e.Linkname)
	seen := map[string]bool{e.Path: true}
	var via []int // hard links of this layer passed on the way
	done := func(r resolved) (resolved, error) {
		for _, j := range via {
			links[j] = r
		}
		return r, nil
	}
	for hops := 0; ; hops++ {
		if seen[target] || hops > len(l.Entries) {
			return resolved{}, fmt.Errorf("%w: %q -> %q: link cycle", ErrHardlink, e.Path, e.Linkname)
		}
		seen[target] = true
		if j, ok := last[target]; ok && !isWhiteout(target) {
			t := &l.Entries[j]
			switch t.Kind {
			case tarindex.KindHardlink:
				if r, ok := links[j]; ok {
					return done(r)
				}
				via = append(via, j)
				target = cleanLinkname(t.Linkname)
				continue
			case tarindex.KindFile, tarindex.KindSymlink:
				g := groups[j]
				if g == nil {
					g = &linkGroup{}
					groups[j] = g
				}
				var c *common.ClipNode
				if t.Kind == tarindex.KindFile {
					c = fileNode(t, l.Digest)
				} else {
					c = symlinkNode(t, l.Digest)
				}
				return done(resolved{attr: c.Attr, remote: c.Remote, kind: c.NodeType, target: c.Target, group: g, later: true})
			default:
				return resolved{}, fmt.Errorf("%w: %q -> %q: target is a %s", ErrHardlink, e.Path, e.Linkname, t.Kind)
			}
		}
		n := m.lookup(target)
		if n == nil {
			return resolved{}, fmt.Errorf("%w: %q -> %q: target does not exist", ErrHardlink, e.Path, e.Linkname)
		}
		if n.clip.NodeType == common.DirNode {
			return resolved{}, fmt.Errorf("%w: %q -> %q: target is a directory", ErrHardlink, e.Path, e.Linkname)
		}
		return done(resolved{attr: n.clip.Attr, remote: n.clip.Remote, kind: n.clip.NodeType, target: n.clip.Target, group: n.group})
	}
}

func isWhiteout(p string) bool {
	return strings.HasPrefix(path.Base(p), whiteoutPrefix)
}

// isAufsMeta reports paths below AUFS metadata directories such as
// "/.wh..wh.plnk", which old Docker layers carry and Docker itself skips.
func isAufsMeta(p string) bool {
	return strings.Contains(p, "/"+whiteoutPrefix+whiteoutPrefix) && path.Base(p) != opaqueMarker
}

// whiteout applies one whiteout marker to the tree (lower layers' content).
func (m *merger) whiteout(p string, abs bool) error {
	dir, base := path.Split(p)
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if base != opaqueMarker && (name == "" || name == "." || name == ".." || strings.Contains(name, "/")) {
		return fmt.Errorf("%w: %q", ErrBadWhiteout, p)
	}
	d, _, err := m.walkDir(path.Clean(dir), abs, false, "", 0, 0)
	if err != nil || d == nil {
		return err // nothing below a missing directory to hide
	}
	if base == opaqueMarker {
		d.children = map[string]*tnode{}
	} else {
		delete(d.children, name)
	}
	return nil
}

// lookup returns the node at the clean absolute path p, or nil.
func (m *merger) lookup(p string) *tnode {
	n := m.root
	if p == "/" {
		return n
	}
	for _, name := range strings.Split(p[1:], "/") {
		if n.children == nil {
			return nil
		}
		n = n.children[name]
		if n == nil {
			return nil
		}
	}
	return n
}

// put inserts n at n.clip.Path, creating missing parents (as directories with
// the inode of layer digest + path) and replacing what is there. Symlinks in
// the parent path are followed inside the image root, as containerd and
// umoci do when they extract a layer; the node then takes the resolved path.
// A symlink loop is ErrSymlinkLoop.
func (m *merger) put(n *tnode, layerDigest string, abs bool) error {
	dir, name := path.Split(n.clip.Path)
	d := path.Clean(dir)
	parent, real, err := m.walkDir(d, abs, true, layerDigest, n.clip.Attr.Mtime, n.clip.Attr.Mtimensec)
	if err != nil {
		return fmt.Errorf("%s: %w", n.clip.Path, err)
	}
	// The inode stays derived from the tar path, which hard links to this
	// entry share. (Entry paths are clean, so with no symlink in the
	// parents the path stays as it is.)
	if real != d {
		n.clip.Path = path.Join(real, name)
	}
	old := parent.children[name]
	if old != nil && old.children != nil && n.clip.NodeType == common.DirNode {
		// A directory over a directory: the upper one's attributes, both
		// layers' contents.
		old.clip = n.clip
		old.synth = false
		return nil
	}
	if n.clip.NodeType == common.DirNode {
		n.children = map[string]*tnode{}
	}
	if err := m.created(n.clip.Path); err != nil {
		return err
	}
	parent.children[name] = n
	return nil
}

// walkDir resolves the directory path p (clean, absolute) as containerd's
// applier resolves an entry's parent: while its components are
// directories, as they are; at the first symlink, by rootPath of p as the
// tar name had it: relative, unless abs (the name began with "/"). The two
// differ: for a relative path rootPath returns a top-level symlink's
// target unjoined, so that its ".." apply after the symlinks before them;
// for an absolute one it joins the target to "/", cleaning them away.
// It returns the directory and its real path. With create, missing
// directories are created (synthesized, with mtime and the inode of
// layerDigest + path) and a non-directory in the way is replaced by one;
// without it, nil is returned for a path that does not lead to a
// directory.
func (m *merger) walkDir(p string, abs, create bool, layerDigest string, mtime uint64, mtimensec uint32) (*tnode, string, error) {
	mode := applierRel
	if abs {
		mode = applierAbs
	}
	return m.walk(p, create, mode, layerDigest, mtime, mtimensec)
}

// walkMode is how walk resolves symlinks.
type walkMode uint8

const (
	kernelWalk walkMode = iota // component by component, as the kernel
	applierRel                 // as containerd resolves a relative tar name's parent
	applierAbs                 // as containerd resolves an absolute tar name's parent
)

// walk is walkDir in mode; with kernelWalk, symlinks are followed
// component by component as the kernel does (inside the root: absolute
// targets from the root, ".." stopping at the root), which is how
// rootPath looks paths up.
func (m *merger) walk(p string, create bool, mode walkMode, layerDigest string, mtime uint64, mtimensec uint32) (*tnode, string, error) {
	cur, curPath := m.root, "/"
	steps := 0
	if strings.HasPrefix(p, "/") && path.Clean(p) == p {
		// Fast path for a clean absolute path (every entry's parent): as
		// long as its components are directories, found or created, the
		// real path is a prefix of p, taken without allocating. At the
		// first symlink the general walk below takes over.
		for i := 1; i < len(p); steps++ {
			if steps > m.lim.MaxPathLen {
				return nil, "", m.walkLimitErr(p)
			}
			end := len(p)
			if j := strings.IndexByte(p[i:], '/'); j >= 0 {
				end = i + j
			}
			name := p[i:end]
			child := cur.children[name]
			switch {
			case child != nil && child.children != nil:
			case child != nil && child.clip.NodeType == common.SymLinkNode:
				if mode != kernelWalk {
					// Where no symlink target on the way has a ".."
					// and the directory exists, the kernel's walk
					// (cheap) finds what rootPath would.
					dotdot := false
					if d, real, err := m.walkGeneral(cur, curPath, p, p[i:], steps, false, "", 0, 0, &dotdot); err == nil && d != nil && !dotdot {
						return d, real, nil
					}
					rp := p[1:]
					if mode == applierAbs {
						rp = p
					}
					real, err := m.rootPath(rp)
					if err != nil {
						return nil, "", err
					}
					return m.walk(real, create, kernelWalk, layerDigest, mtime, mtimensec)
				}
				return m.walkGeneral(cur, curPath, p, p[i:], steps, create, layerDigest, mtime, mtimensec, nil)
			case !create:
				return nil, "", nil
			default:
				var err error
				if child, err = m.synthDir(cur, name, p[:end], layerDigest, mtime, mtimensec); err != nil {
					return nil, "", err
				}
			}
			cur, curPath = child, p[:end]
			i = end + 1
		}
		return cur, curPath, nil
	}
	if mode != kernelWalk {
		rp := strings.TrimPrefix(p, "/")
		if mode == applierAbs {
			rp = "/" + rp
		}
		real, err := m.rootPath(rp)
		if err != nil {
			return nil, "", err
		}
		return m.walk(real, create, kernelWalk, layerDigest, mtime, mtimensec)
	}
	return m.walkGeneral(cur, curPath, p, p, steps, create, layerDigest, mtime, mtimensec, nil)
}

func (m *merger) walkLimitErr(p string) error {
	return limits.New("MaxPathLen", int64(m.lim.MaxPathLen), fmt.Sprintf("resolving %.60q walks more than %d path components (symlinks in parent paths)", p, m.lim.MaxPathLen))
}

// synthDir creates the missing directory name (at childPath) in cur.
func (m *merger) synthDir(cur *tnode, name, childPath, layerDigest string, mtime uint64, mtimensec uint32) (*tnode, error) {
	if err := m.created(childPath); err != nil {
		return nil, err
	}
	child := &tnode{
		synth: true,
		clip: &common.ClipNode{
			Path:     childPath,
			NodeType: common.DirNode,
			Attr: fuse.Attr{
				Ino: Inode(layerDigest, childPath), Mode: syscall.S_IFDIR | 0o755, Nlink: 2,
				Atime: mtime, Atimensec: mtimensec, Mtime: mtime, Mtimensec: mtimensec, Ctime: mtime, Ctimensec: mtimensec,
			},
		},
		children: map[string]*tnode{},
	}
	cur.children[name] = child
	return child, nil
}

// walkGeneral is walkDir of p from the directory cur (at curPath) on, for
// the components of rest, after steps components were walked.
// With dotdot, it reports whether a symlink target followed has a ".."
// component (only then can rootPath resolve p elsewhere).
func (m *merger) walkGeneral(cur *tnode, curPath, p, rest string, steps int, create bool, layerDigest string, mtime uint64, mtimensec uint32, dotdot *bool) (*tnode, string, error) {
	pending := strings.Split(strings.Trim(rest, "/"), "/")
	links := 0
	// Symlink targets of up to MaxPathLen bytes, 40 of them, could make
	// every entry walk some 80k components (a few ms each: a CPU bomb of
	// a layer of many such entries); the walk may take MaxPathLen steps,
	// twice the components of the longest path.
	for ; len(pending) > 0; steps++ {
		if steps > m.lim.MaxPathLen {
			return nil, "", m.walkLimitErr(p)
		}
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			curPath = path.Dir(curPath)
			cur = m.lookup(curPath)
			continue
		}
		childPath := path.Join(curPath, name)
		child := cur.children[name]
		switch {
		case child != nil && child.children != nil:
		case child != nil && child.clip.NodeType == common.SymLinkNode:
			if links++; links > MaxSymlinks {
				return nil, "", fmt.Errorf("%w resolving %s", ErrSymlinkLoop, p)
			}
			t := child.clip.Target
			if dotdot != nil && hasDotDot(t) {
				*dotdot = true
			}
			if strings.HasPrefix(t, "/") {
				cur, curPath = m.root, "/"
			}
			pending = append(strings.Split(strings.Trim(t, "/"), "/"), pending...)
			continue
		case !create:
			return nil, "", nil
		default:
			var err error
			if child, err = m.synthDir(cur, name, childPath, layerDigest, mtime, mtimensec); err != nil {
				return nil, "", err
			}
		}
		cur, curPath = child, childPath
	}
	return cur, curPath, nil
}

// mergeRoot takes the attributes of a "./" entry into the root, keeping
// inode 1.
func (m *merger) mergeRoot(e *tarindex.Entry) {
	a := &m.root.clip.Attr
	a.Mode = syscall.S_IFDIR | (e.Mode & 0o7777)
	a.Owner = fuse.Owner{Uid: e.Uid, Gid: e.Gid}
	setTimes(a, e)
}

// finish flattens the tree into clip's sorted node list, sets the link
// counts of hard-linked names and fills the statistics.
func (m *merger) finish() []*common.ClipNode {
	var all []*tnode
	var walk func(n *tnode)
	walk = func(n *tnode) {
		all = append(all, n)
		if n.group != nil {
			n.group.names++
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(m.root)

	sort.Slice(all, func(i, j int) bool { return all[i].clip.Path < all[j].clip.Path })
	uniqueInodes(all)
	nodes := make([]*common.ClipNode, len(all))
	counted := map[*linkGroup]bool{}
	for i, n := range all {
		nodes[i] = n.clip
		switch n.clip.NodeType {
		case common.DirNode:
			m.stats.Dirs++
		case common.FileNode:
			m.stats.Files++
		case common.SymLinkNode:
			m.stats.Symlinks++
		}
		if n.synth {
			m.stats.SynthesizedDirs++
		}
		if n.group != nil && n.group.meta != nil {
			a, e := &n.clip.Attr, n.group.meta
			a.Owner = fuse.Owner{Uid: e.Uid, Gid: e.Gid}
			if n.clip.NodeType != common.SymLinkNode {
				a.Mode = a.Mode&^0o7777 | e.Mode&0o7777
			}
			setTimes(a, e)
		}
		if n.group != nil && n.group.names > 1 {
			n.clip.Attr.Nlink = uint32(n.group.names)
			if counted[n.group] {
				m.stats.HardLinks++
			}
			counted[n.group] = true
		}
	}
	return nodes
}

// uniqueInodes gives a fresh inode to every node (with its hard links)
// whose inode another node of the tree, not one of its names, already has,
// in path order. clip's inode rule hashes a layer and a tar path, so a
// hard link to an entry that its layer writes again later keeps the
// first entry's inode, which the second gets as well; the kernel would
// take them for one file. Real images have no such pair.
func uniqueInodes(all []*tnode) {
	owner := make(map[uint64]any, len(all)) // inode -> its *linkGroup, or *tnode for a directory
	moved := map[*linkGroup]uint64{}
	for _, n := range all {
		var key any = n
		if n.group != nil {
			if ino, ok := moved[n.group]; ok {
				n.clip.Attr.Ino = ino
				continue
			}
			key = n.group
		}
		ino := n.clip.Attr.Ino
		if k, taken := owner[ino]; taken && k != key {
			for salt := 1; ; salt++ {
				ino = Inode(fmt.Sprintf("ociclip-inode-%d", salt), n.clip.Path)
				if _, taken := owner[ino]; !taken {
					break
				}
			}
			n.clip.Attr.Ino = ino
			if n.group != nil {
				moved[n.group] = ino
			}
		}
		owner[ino] = key
	}
}

// Inode is clip's inode rule: FNV-1a 64 of layer digest + path; 0 and 1 are
// reserved (1 is the root), so results <= 1 become 2.
func Inode(layerDigest, p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(layerDigest))
	h.Write([]byte(p))
	ino := h.Sum64()
	if ino <= 1 {
		ino = 2
	}
	return ino
}

// unixTime maps a time to clip's (seconds, nanoseconds); zero and pre-1970
// times become 0 instead of wrapping to huge unsigned values.
func unixTime(t time.Time) (uint64, uint32) {
	if t.IsZero() || t.Unix() < 0 {
		return 0, 0
	}
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

func setTimes(a *fuse.Attr, e *tarindex.Entry) {
	a.Atime, a.Atimensec = unixTime(e.AccessTime)
	a.Mtime, a.Mtimensec = unixTime(e.ModTime)
	a.Ctime, a.Ctimensec = unixTime(e.ChangeTime)
}

func baseAttr(e *tarindex.Entry, layerDigest string, typ uint32) fuse.Attr {
	a := fuse.Attr{
		Ino:   Inode(layerDigest, e.Path),
		Mode:  typ | (e.Mode & 0o7777),
		Nlink: 1,
		Owner: fuse.Owner{Uid: e.Uid, Gid: e.Gid},
	}
	setTimes(&a, e)
	return a
}

func dirNode(e *tarindex.Entry, layerDigest string) *common.ClipNode {
	a := baseAttr(e, layerDigest, syscall.S_IFDIR)
	a.Nlink = 2
	return &common.ClipNode{Path: e.Path, NodeType: common.DirNode, Attr: a}
}

func fileNode(e *tarindex.Entry, layerDigest string) *common.ClipNode {
	a := baseAttr(e, layerDigest, syscall.S_IFREG)
	a.Size = uint64(e.Size)
	a.Blocks = (uint64(e.Size) + 511) / 512
	return &common.ClipNode{
		Path: e.Path, NodeType: common.FileNode, Attr: a,
		Remote: &common.RemoteRef{LayerDigest: layerDigest, UOffset: e.Offset, ULength: e.Size},
	}
}

func symlinkNode(e *tarindex.Entry, layerDigest string) *common.ClipNode {
	a := baseAttr(e, layerDigest, syscall.S_IFLNK)
	a.Size = uint64(len(e.Linkname))
	return &common.ClipNode{Path: e.Path, NodeType: common.SymLinkNode, Attr: a, Target: e.Linkname}
}
