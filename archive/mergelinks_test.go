package archive

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/tarindex"
)

// TestMergeHardLinkTargetsAsContainerd: hard-link targets resolve as
// containerd's applier resolves them (hardlinkRootPath): symlinks in the
// parent path followed inside the root, ".." stopping at the root, the
// last component not followed, the link's own old node gone first. The
// first two cases are issue 14's (containerd's breakout tests).
func TestMergeHardLinkTargetsAsContainerd(t *testing.T) {
	etc := []tarindex.Entry{dir("/etc"), file("/etc/passwd", 512, 6)}
	sameAs := func(t *testing.T, m map[string]*common.ClipNode, link, target string) {
		t.Helper()
		l, tg := m[link], m[target]
		if l == nil || tg == nil {
			t.Fatalf("%s or %s missing: %q", link, target, paths(m))
		}
		if l.NodeType != tg.NodeType || l.Attr.Ino != tg.Attr.Ino || l.Attr.Nlink != 2 || tg.Attr.Nlink != 2 ||
			(l.Remote != nil) != (tg.Remote != nil) || l.Remote != nil && *l.Remote != *tg.Remote || l.Target != tg.Target {
			t.Errorf("%s = %+v, want a second name of %s = %+v", link, l, target, tg)
		}
	}
	t.Run("through a symlinked directory", func(t *testing.T) {
		m := merge(t, append(etc, symlink("/localetc", "/etc"), hardlink("/localpasswd", "localetc/passwd")))
		sameAs(t, m, "/localpasswd", "/etc/passwd")
	})
	t.Run("dot-dot above the root", func(t *testing.T) {
		m := merge(t, append(etc, hardlink("/localpasswd", "../../../../../etc/passwd")))
		sameAs(t, m, "/localpasswd", "/etc/passwd")
	})
	t.Run("relative symlink in a lower layer, absolute target", func(t *testing.T) {
		m := merge(t, append(etc, dir("/usr"), symlink("/usr/e", "../etc")), []tarindex.Entry{hardlink("/p", "/usr/e/passwd")})
		sameAs(t, m, "/p", "/etc/passwd")
	})
	t.Run("dot-dot after a symlink is taken from its target", func(t *testing.T) {
		// "s/../etc/passwd" with s -> /x/y: containerd resolves s first,
		// then "..": /x/etc/passwd, not the lexical /etc/passwd.
		m := merge(t, append(etc, dir("/x"), dir("/x/y"), dir("/x/etc"), file("/x/etc/passwd", 1024, 3), symlink("/s", "/x/y"), hardlink("/l", "s/../etc/passwd")))
		sameAs(t, m, "/l", "/x/etc/passwd")
	})
	t.Run("final symlink not followed", func(t *testing.T) {
		m := merge(t, append(etc, symlink("/pw", "etc/passwd"), hardlink("/l", "pw")))
		sameAs(t, m, "/l", "/pw")
	})
	t.Run("trailing slash follows the final symlink", func(t *testing.T) {
		// containerd: Split("pw/") = ("pw/", ""), rootPath("pw/") follows pw.
		m := merge(t, append(etc, symlink("/pw", "etc/passwd"), hardlink("/l", "pw/")))
		sameAs(t, m, "/l", "/etc/passwd")
	})
	t.Run("earlier entry of the same path, not the later one", func(t *testing.T) {
		// containerd links the node that exists when the link is applied;
		// the later /f replaces that name with a new inode.
		m := merge(t, []tarindex.Entry{file("/f", 512, 1), hardlink("/l", "/f"), file("/f", 1024, 2)})
		if m["/l"].Remote.UOffset != 512 || m["/l"].Attr.Nlink != 1 || m["/f"].Remote.UOffset != 1024 || m["/f"].Attr.Nlink != 1 {
			t.Errorf("l=%+v f=%+v", m["/l"], m["/f"])
		}
		// Both entries are FNV(layer, "/f") by clip's rule: /l, the first
		// one's only name left, gets another inode (applier_test found it).
		if m["/l"].Attr.Ino == m["/f"].Attr.Ino {
			t.Errorf("/l and /f share inode %d", m["/f"].Attr.Ino)
		}
	})
	t.Run("lower target replaced later in the link's layer", func(t *testing.T) {
		m := merge(t, []tarindex.Entry{file("/f", 512, 1)}, []tarindex.Entry{hardlink("/l", "/f"), file("/f", 1024, 2)})
		if m["/l"].Remote.UOffset != 512 || m["/l"].Remote.LayerDigest != "sha256:layer0" || m["/f"].Remote.UOffset != 1024 {
			t.Errorf("l=%+v f=%+v", m["/l"], m["/f"])
		}
	})
	t.Run("a link cannot name what it replaces", func(t *testing.T) {
		// containerd removes /d (and /d/f) before it links: target gone.
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{dir("/d"), file("/d/f", 0, 1)}}, {Digest: "e", Entries: []tarindex.Entry{hardlink("/d", "d/f")}}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("link over its target's directory: err = %v", err)
		}
		_, _, err = Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{hardlink("/self", "self")}}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("link to itself: err = %v", err)
		}
	})
	t.Run("the link header's owner, mode and times become the inode's", func(t *testing.T) {
		l := hardlink("/l", "/f")
		l.Mode, l.Uid, l.Gid, l.ModTime = 0o4711, 5, 6, t0.Add(time.Hour)
		s := hardlink("/ls", "/s")
		s.Mode, s.Uid = 0o600, 7
		m := merge(t, []tarindex.Entry{file("/f", 512, 1), symlink("/s", "f")}, []tarindex.Entry{l, s})
		for _, p := range []string{"/f", "/l"} {
			a := m[p].Attr
			if a.Mode != syscall.S_IFREG|0o4711 || a.Uid != 5 || a.Gid != 6 || a.Mtime != uint64(t0.Unix())+3600 || a.Atime != 0 {
				t.Errorf("%s: %+v", p, a)
			}
		}
		for _, p := range []string{"/s", "/ls"} {
			if a := m[p].Attr; a.Mode != syscall.S_IFLNK|0o777 || a.Uid != 7 {
				t.Errorf("%s: %+v (a symlink's mode stays)", p, a)
			}
		}
	})
	t.Run("a link to a later entry of its tar leaves the entry's metadata", func(t *testing.T) {
		l := hardlink("/l", "/f")
		l.Mode, l.Uid = 0o600, 5
		m := merge(t, []tarindex.Entry{l, file("/f", 512, 1)})
		if a := m["/l"].Attr; a.Mode != syscall.S_IFREG|0o644 || a.Uid != 0 || a.Nlink != 2 || a.Ino != m["/f"].Attr.Ino {
			t.Errorf("/l: %+v", a)
		}
	})
	t.Run("a link replacing a symlink its own parent path runs through", func(t *testing.T) {
		// /a/a/a: /a -> b/a/a, and /b/a/a/a -> /b/a/a, so the link's
		// parent /a/a is /b/a/a through the symlink the link replaces.
		// containerd resolves the parent once, before it removes the
		// symlink: the link lands at /b/a/a/a (FuzzAppliers found it at
		// /b/a/a/a/a under a new directory).
		m := merge(t, []tarindex.Entry{dir("/b"), symlink("/a", "./b/a/a"), symlink("/a/a", "/b/a/a"), hardlink("/a/a/a", "/a")})
		wantPaths(t, m, "/", "/a", "/b", "/b/a", "/b/a/a", "/b/a/a/a")
		if l := m["/b/a/a/a"]; l.NodeType != common.SymLinkNode || l.Attr.Ino != m["/a"].Attr.Ino || l.Attr.Nlink != 2 {
			t.Errorf("/b/a/a/a: %+v", l)
		}
	})
	t.Run("an absolute tar name resolves its parent from the absolute text", func(t *testing.T) {
		a, b := symlink("/a", "./b/.."), symlink("/b", "/a/b")
		abs := symlink("/a/a", "/a")
		abs.AbsName = true
		m := merge(t, []tarindex.Entry{a, b, abs})
		wantPaths(t, m, "/", "/a", "/b")
		if m["/a"].Target != "/a" {
			t.Errorf("/a -> %q, want the entry /a/a placed at /a (target /a)", m["/a"].Target)
		}
		rel := abs
		rel.AbsName = false
		if _, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{a, b, rel}}}, t0); !errors.Is(err, ErrSymlinkLoop) {
			t.Errorf("relative a/a: err = %v, want ErrSymlinkLoop", err)
		}
	})
	t.Run("target that is the parent of a dot-dot", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: append(etc, hardlink("/l", "etc/passwd/.."))}}, t0)
		if !errors.Is(err, ErrHardlink) {
			t.Errorf("err = %v, want ErrHardlink (a directory)", err)
		}
	})
	t.Run("symlink loop in the target's parents", func(t *testing.T) {
		_, _, err := Merge([]LayerEntries{{Digest: "d", Entries: []tarindex.Entry{symlink("/a", "b"), symlink("/b", "a"), hardlink("/l", "a/x")}}}, t0)
		if !errors.Is(err, ErrHardlink) || !errors.Is(err, ErrSymlinkLoop) {
			t.Errorf("err = %v, want ErrHardlink wrapping ErrSymlinkLoop", err)
		}
	})
}

// TestMergeLinkResolutionBounded: a layer of many hard links whose targets
// go through long symlink chains stays fast (each resolution is bounded).
func TestMergeLinkResolutionBounded(t *testing.T) {
	es := []tarindex.Entry{dir("/d"), file("/d/f", 0, 1)}
	for k := 0; k < 250; k++ {
		es = append(es, symlink("/s"+itoa(k), "s"+itoa(k+1)))
	}
	es = append(es, symlink("/s250", "d"))
	for i := 0; i < 2000; i++ {
		es = append(es, hardlink("/l"+itoa(i), "s0/f"))
	}
	start := time.Now()
	_, st, err := Merge([]LayerEntries{{Digest: "d", Entries: es}}, t0)
	if err != nil || st.HardLinks != 2000 {
		t.Errorf("err %v, %+v", err, st)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
