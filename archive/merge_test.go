package archive

import (
	"errors"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/tarindex"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

func file(p string, off, size int64) tarindex.Entry {
	return tarindex.Entry{Path: p, Kind: tarindex.KindFile, Mode: 0o644, Size: size, Offset: off, ModTime: t0, AccessTime: t0, ChangeTime: t0}
}
func dir(p string) tarindex.Entry {
	return tarindex.Entry{Path: p, Kind: tarindex.KindDir, Mode: 0o755, ModTime: t0}
}
func symlink(p, target string) tarindex.Entry {
	return tarindex.Entry{Path: p, Kind: tarindex.KindSymlink, Mode: 0o777, Linkname: target, ModTime: t0}
}
func hardlink(p, target string) tarindex.Entry {
	return tarindex.Entry{Path: p, Kind: tarindex.KindHardlink, Mode: 0o644, Linkname: target, ModTime: t0}
}
func wh(p string) tarindex.Entry { return file(p, 0, 0) }

func merge(t *testing.T, layers ...[]tarindex.Entry) map[string]*common.ClipNode {
	t.Helper()
	in := make([]LayerEntries, len(layers))
	for i, l := range layers {
		in[i] = LayerEntries{Digest: "sha256:layer" + string(rune('0'+i)), Entries: l}
	}
	nodes, _, err := Merge(in, t0)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if !sort.SliceIsSorted(nodes, func(i, j int) bool { return nodes[i].Path < nodes[j].Path }) {
		t.Fatal("nodes not sorted by path")
	}
	m := map[string]*common.ClipNode{}
	for _, n := range nodes {
		if m[n.Path] != nil {
			t.Fatalf("duplicate path %s", n.Path)
		}
		m[n.Path] = n
	}
	if m["/"] == nil || m["/"].Attr.Ino != 1 {
		t.Fatalf("root missing or wrong inode: %+v", m["/"])
	}
	return m
}

func paths(m map[string]*common.ClipNode) []string {
	var p []string
	for k := range m {
		p = append(p, k)
	}
	sort.Strings(p)
	return p
}

func wantPaths(t *testing.T, m map[string]*common.ClipNode, want ...string) {
	t.Helper()
	got := paths(m)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("paths = %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("paths = %q, want %q", got, want)
		}
	}
}

func TestMergeBasicAttributes(t *testing.T) {
	e := file("/etc/passwd", 1536, 700)
	e.Mode = 0o4755
	e.Uid, e.Gid = 10, 20
	m := merge(t, []tarindex.Entry{dir("/etc"), e, symlink("/bin", "usr/bin"), dir("/tmp")})
	n := m["/etc/passwd"]
	if n.NodeType != common.FileNode || n.Attr.Mode != syscall.S_IFREG|0o4755 {
		t.Errorf("file node %+v", n)
	}
	if n.Attr.Size != 700 || n.Attr.Blocks != 2 || n.Attr.Nlink != 1 || n.Attr.Uid != 10 || n.Attr.Gid != 20 {
		t.Errorf("file attr %+v", n.Attr)
	}
	if n.Remote == nil || n.Remote.LayerDigest != "sha256:layer0" || n.Remote.UOffset != 1536 || n.Remote.ULength != 700 {
		t.Errorf("remote %+v", n.Remote)
	}
	if n.Attr.Ino != Inode("sha256:layer0", "/etc/passwd") {
		t.Errorf("inode %d", n.Attr.Ino)
	}
	if n.Attr.Mtime != uint64(t0.Unix()) || n.Attr.Mtimensec != uint32(t0.Nanosecond()) || n.Attr.Atime != uint64(t0.Unix()) {
		t.Errorf("times %+v", n.Attr)
	}
	s := m["/bin"]
	if s.NodeType != common.SymLinkNode || s.Target != "usr/bin" || s.Attr.Size != 7 || s.Attr.Mode != syscall.S_IFLNK|0o777 {
		t.Errorf("symlink %+v", s)
	}
	d := m["/etc"]
	if d.NodeType != common.DirNode || d.Attr.Nlink != 2 || d.Attr.Mode != syscall.S_IFDIR|0o755 || d.Attr.Size != 0 {
		t.Errorf("dir %+v", d)
	}
	r := m["/"]
	if r.Attr.Mode != syscall.S_IFDIR|0o755 || r.Attr.Mtime != uint64(t0.Unix()) || r.Attr.Nlink != 2 {
		t.Errorf("root %+v", r.Attr)
	}
}

func TestMergeZeroAndPre1970Times(t *testing.T) {
	a := file("/a", 0, 1)
	a.ModTime, a.AccessTime, a.ChangeTime = time.Time{}, time.Unix(-5, 0), time.Unix(0, 0)
	m := merge(t, []tarindex.Entry{a})
	at := m["/a"].Attr
	if at.Mtime != 0 || at.Atime != 0 || at.Ctime != 0 || at.Mtimensec != 0 {
		t.Errorf("times not mapped to 0: %+v", at)
	}
}

func TestMergeSyntheticParents(t *testing.T) {
	m := merge(t, []tarindex.Entry{file("/a/b/c", 512, 3)})
	wantPaths(t, m, "/", "/a", "/a/b", "/a/b/c")
	for _, p := range []string{"/a", "/a/b"} {
		n := m[p]
		if n.NodeType != common.DirNode || n.Attr.Mode != syscall.S_IFDIR|0o755 || n.Attr.Nlink != 2 {
			t.Errorf("%s: %+v", p, n)
		}
		if n.Attr.Ino != Inode("sha256:layer0", p) || n.Attr.Mtime != uint64(t0.Unix()) {
			t.Errorf("%s: ino/mtime %+v", p, n.Attr)
		}
	}
}

func TestMergeRootEntry(t *testing.T) {
	r := dir("/")
	r.Mode = 0o1777
	r.Uid = 5
	m := merge(t, []tarindex.Entry{r, file("/x", 0, 0)})
	a := m["/"].Attr
	if a.Ino != 1 || a.Mode != syscall.S_IFDIR|0o1777 || a.Uid != 5 || a.Mtime != uint64(t0.Unix()) {
		t.Errorf("root %+v", a)
	}
}

func TestMergeWhiteouts(t *testing.T) {
	lower := []tarindex.Entry{dir("/a"), file("/a/x", 0, 1), file("/a/y", 0, 1), dir("/b"), file("/b/z", 0, 1), file("/c", 0, 1), file("/top", 0, 1)}
	t.Run("file and dir", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{wh("/a/.wh.x"), wh("/.wh.b")})
		wantPaths(t, m, "/", "/a", "/a/y", "/c", "/top")
	})
	t.Run("opaque dir keeps same-layer entries in any order", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{file("/a/new", 0, 1), wh("/a/.wh..wh..opq")})
		wantPaths(t, m, "/", "/a", "/a/new", "/b", "/b/z", "/c", "/top")
	})
	t.Run("opaque root", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{wh("/.wh..wh..opq"), file("/fresh", 0, 1)})
		wantPaths(t, m, "/", "/fresh")
	})
	t.Run("whiteout applies to lower layers only", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{file("/c", 10, 2), wh("/.wh.c")})
		wantPaths(t, m, "/", "/a", "/a/x", "/a/y", "/b", "/b/z", "/c", "/top")
		if m["/c"].Remote.LayerDigest != "sha256:layer1" {
			t.Errorf("/c should come from the upper layer: %+v", m["/c"].Remote)
		}
	})
	t.Run("whiteout of a missing path is harmless", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{wh("/nope/.wh.x"), wh("/.wh.nothing")})
		if len(m) != 8 {
			t.Errorf("got %q", paths(m))
		}
	})
	t.Run("whiteout of root is an error", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{wh("/.wh.")}}}, t0)
		if !errors.Is(err, ErrBadWhiteout) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMergeReplacement(t *testing.T) {
	lower := []tarindex.Entry{dir("/d"), file("/d/f", 0, 1), dir("/d/sub"), file("/d/sub/g", 0, 1), file("/f", 0, 1)}
	t.Run("symlink replaces dir", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{symlink("/d", "/elsewhere")})
		wantPaths(t, m, "/", "/d", "/f")
		if m["/d"].NodeType != common.SymLinkNode {
			t.Errorf("%+v", m["/d"])
		}
	})
	t.Run("dir over dir merges contents, takes upper attributes", func(t *testing.T) {
		d := dir("/d")
		d.Mode = 0o700
		m := merge(t, lower, []tarindex.Entry{d, file("/d/new", 0, 1)})
		wantPaths(t, m, "/", "/d", "/d/f", "/d/new", "/d/sub", "/d/sub/g", "/f")
		if m["/d"].Attr.Mode != syscall.S_IFDIR|0o700 || m["/d"].Attr.Ino != Inode("sha256:layer1", "/d") {
			t.Errorf("%+v", m["/d"].Attr)
		}
	})
	t.Run("dir replaces file", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{dir("/f"), file("/f/in", 0, 1)})
		wantPaths(t, m, "/", "/d", "/d/f", "/d/sub", "/d/sub/g", "/f", "/f/in")
	})
	t.Run("file in upper layer replaces lower file", func(t *testing.T) {
		m := merge(t, lower, []tarindex.Entry{file("/f", 99, 5)})
		if m["/f"].Remote.UOffset != 99 || m["/f"].Remote.LayerDigest != "sha256:layer1" {
			t.Errorf("%+v", m["/f"].Remote)
		}
	})
}

func TestMergeHardLinks(t *testing.T) {
	t.Run("backward", func(t *testing.T) {
		m := merge(t, []tarindex.Entry{file("/a", 512, 10), hardlink("/b", "/a")})
		a, b := m["/a"], m["/b"]
		if b.NodeType != common.FileNode || b.Attr.Ino != a.Attr.Ino || *b.Remote != *a.Remote {
			t.Errorf("link %+v target %+v", b, a)
		}
		if a.Attr.Nlink != 2 || b.Attr.Nlink != 2 {
			t.Errorf("nlink %d %d", a.Attr.Nlink, b.Attr.Nlink)
		}
	})
	t.Run("forward", func(t *testing.T) {
		m := merge(t, []tarindex.Entry{hardlink("/b", "/a"), hardlink("/c", "/b"), file("/a", 512, 10)})
		if m["/b"].Remote == nil || m["/b"].Remote.UOffset != 512 || m["/c"].Attr.Ino != m["/a"].Attr.Ino || m["/a"].Attr.Nlink != 3 {
			t.Errorf("b=%+v c=%+v a=%+v", m["/b"], m["/c"], m["/a"])
		}
	})
	t.Run("to symlink keeps type", func(t *testing.T) {
		m := merge(t, []tarindex.Entry{symlink("/s", "target"), hardlink("/s2", "/s")})
		if m["/s2"].NodeType != common.SymLinkNode || m["/s2"].Target != "target" || m["/s2"].Attr.Nlink != 2 {
			t.Errorf("%+v", m["/s2"])
		}
	})
	t.Run("to lower layer target whited out in the same layer", func(t *testing.T) {
		m := merge(t, []tarindex.Entry{file("/a", 512, 10)}, []tarindex.Entry{hardlink("/b", "/a"), wh("/.wh.a")})
		wantPaths(t, m, "/", "/b")
		if m["/b"].Remote.UOffset != 512 || m["/b"].Attr.Nlink != 1 {
			t.Errorf("%+v", m["/b"])
		}
	})
	t.Run("missing target", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{hardlink("/b", "/nope")}}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("cycle", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{hardlink("/a", "/b"), hardlink("/b", "/a")}}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("to directory", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{dir("/d"), hardlink("/b", "/d")}}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMergeDevicesSkippedButHide(t *testing.T) {
	dev := tarindex.Entry{Path: "/dev/null", Kind: tarindex.KindChar, Mode: 0o666, Devmajor: 1, Devminor: 3}
	fifo := tarindex.Entry{Path: "/f", Kind: tarindex.KindFIFO, Mode: 0o644}
	in := []LayerEntries{
		{Digest: "l0", Entries: []tarindex.Entry{file("/f", 0, 1), dir("/dev")}},
		{Digest: "l1", Entries: []tarindex.Entry{dev, fifo}},
	}
	nodes, stats, err := Merge(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[1].Path != "/dev" {
		t.Errorf("nodes %v", nodes)
	}
	if stats.SkippedDevices != 1 || stats.SkippedFIFOs != 1 {
		t.Errorf("stats %+v", stats)
	}
}

func TestMergeAufsMetadataSkipped(t *testing.T) {
	m := merge(t, []tarindex.Entry{dir("/.wh..wh.plnk"), file("/.wh..wh.plnk/123.456", 0, 1), file("/ok", 0, 1)})
	wantPaths(t, m, "/", "/ok")
}

func TestMergeStats(t *testing.T) {
	in := []LayerEntries{{Digest: "d", Entries: []tarindex.Entry{file("/a/f", 0, 1), hardlink("/a/g", "/a/f"), symlink("/s", "x"), wh("/.wh.zz")}}}
	_, st, err := Merge(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := MergeStats{Files: 2, Dirs: 2, Symlinks: 1, HardLinks: 1, Whiteouts: 1, SynthesizedDirs: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestInodeRule(t *testing.T) {
	// FNV-1a 64 of "" is the offset basis; the rule must never give 0 or 1.
	if Inode("", "") <= 1 {
		t.Error("inode <= 1")
	}
	if Inode("sha256:a", "/x") == Inode("sha256:b", "/x") {
		t.Error("inode ignores the layer digest")
	}
}

// Symlinks in parent paths are followed inside the root, as containerd and
// umoci extract layers (usrmerge: /lib -> usr/lib).
func TestMergeSymlinkedParents(t *testing.T) {
	base := []tarindex.Entry{dir("/usr"), dir("/usr/lib"), symlink("/lib", "usr/lib"), symlink("/abs", "/usr"), symlink("/up", "usr/../usr/lib/../lib")}
	m := merge(t, base, []tarindex.Entry{file("/lib/x.so", 0, 1), file("/abs/bin/tool", 0, 1), file("/up/y", 0, 1), wh("/lib/.wh.gone")})
	wantPaths(t, m, "/", "/usr", "/usr/lib", "/lib", "/abs", "/up", "/usr/lib/x.so", "/usr/bin", "/usr/bin/tool", "/usr/lib/y")
	if m["/lib"].NodeType != common.SymLinkNode {
		t.Errorf("/lib replaced: %+v", m["/lib"])
	}
	// A whiteout below a symlinked directory removes the real entry.
	m = merge(t, base, []tarindex.Entry{file("/usr/lib/gone", 0, 1)}, []tarindex.Entry{wh("/lib/.wh.gone")})
	if m["/usr/lib/gone"] != nil {
		t.Error("whiteout through a symlinked parent did not apply")
	}
	// Loops are an error, not a hang.
	_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{symlink("/a", "b"), symlink("/b", "a"), file("/a/f", 0, 1)}}}, t0)
	if !errors.Is(err, ErrSymlinkLoop) {
		t.Errorf("err = %v", err)
	}
	// A file in the way of a parent is still replaced by a directory.
	m = merge(t, []tarindex.Entry{file("/f", 0, 1)}, []tarindex.Entry{file("/f/g", 0, 1)})
	if m["/f"].NodeType != common.DirNode || m["/f/g"] == nil {
		t.Errorf("%+v", m["/f"])
	}
}
