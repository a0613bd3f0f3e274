package e2e_test

// Differential tests of ociclip's merged tree against two real layer
// appliers: containerd's (pkg/archive.Apply of each layer in order, run by
// the helper command internal/cdapply, a module of its own) and umoci's
// (`umoci raw unpack`). See "Overlay parity with containerd and umoci" in
// docs/COMPAT.md for the cases, the differences found and the rules that
// decide them.

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testenv"
	"github.com/ociclip/ociclip/internal/testimage"
)

// requireRoot skips (fails with CI=true) unless the test runs as root, as
// the appliers need to create files of any owner.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	testenv.Missing(t, "containerd's and umoci's appliers need root to set owners (euid %d)", os.Geteuid())
}

// containerdApplier is a running `cdapply -serve`.
type containerdApplier struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

// startContainerd builds internal/cdapply (a module of its own: containerd
// stays out of ociclip's go.mod) and starts it in -serve mode until the
// test ends. Without go, or when the build fails (no network to fetch
// containerd's module on a cold cache), the test is skipped, or fails with
// CI=true.
func startContainerd(t testing.TB) *containerdApplier {
	t.Helper()
	requireRoot(t)
	unavailable := func(format string, args ...any) {
		t.Helper()
		testenv.Missing(t, "containerd's applier is unavailable: "+format, args...)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "cdapply")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "cdapply")
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		unavailable("go build internal/cdapply: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-serve")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		unavailable("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("cdapply -serve: %v", err)
		}
	})
	sc := bufio.NewScanner(outp)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &containerdApplier{in: in, out: sc}
}

// apply applies the layer tar files in order into root with containerd's
// applier; refused is containerd's own error, err a failure of the helper.
func (c *containerdApplier) apply(root string, layers []string) (refused, err error) {
	req, err := json.Marshal(struct {
		Root   string   `json:"root"`
		Layers []string `json:"layers"`
	}{root, layers})
	if err != nil {
		return nil, err
	}
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("cdapply: %w", err)
	}
	if !c.out.Scan() {
		return nil, fmt.Errorf("cdapply ended: %v", c.out.Err())
	}
	var resp struct {
		Err string `json:"err"`
	}
	if err := json.Unmarshal(c.out.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("cdapply answer %q: %w", c.out.Bytes(), err)
	}
	if resp.Err != "" {
		return errors.New(resp.Err), nil
	}
	return nil, nil
}

// applyIn applies the layer tars with containerd's applier into a new
// directory "containerd" below work and returns it, with containerd's
// error when it refuses the layers; a failure of the helper fails t.
func (c *containerdApplier) applyIn(t testing.TB, work string, layers []string) (root string, refused error) {
	t.Helper()
	root = filepath.Join(work, "containerd")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	refused, err := c.apply(root, layers)
	if err != nil {
		t.Fatal(err)
	}
	return root, refused
}

// applierImage is a layer stack written as an OCI layout (ref "t") and as
// plain tar files.
type applierImage struct {
	dir  string   // the layout
	tars []string // the uncompressed layer tars
}

// writeApplierImage writes the layers (compressed as c) into a new
// directory below parent.
func writeApplierImage(parent string, layers [][]testimage.Entry, c testimage.Compression) (*applierImage, error) {
	img := testimage.Image{}
	for _, es := range layers {
		img.Layers = append(img.Layers, testimage.Layer{Entries: es, Compression: c})
	}
	dir := filepath.Join(parent, "layout")
	l, err := testimage.Write(dir, testimage.Ref{Name: "t", Image: &img})
	if err != nil {
		return nil, err
	}
	ai := &applierImage{dir: dir}
	for i, b := range l.Images["t"].LayerTars {
		p := filepath.Join(parent, fmt.Sprintf("layer%d.tar", i+1))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		ai.tars = append(ai.tars, p)
	}
	return ai, nil
}

// ociclipTree indexes the layout with ociclip and returns its merged tree,
// every regular file read through ociclip's reader. An error is ociclip
// refusing the image (or failing to read a file back, which the caller
// reports as a failure).
func ociclipTree(parent, layoutDir string) (map[string]fsEntry, error) {
	out := filepath.Join(parent, "image.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: layoutDir, LayoutRef: "t", OutputPath: out}); err != nil {
		return nil, err
	}
	r, err := ociclip.OpenReader(out, layoutDir)
	if err != nil {
		return nil, fmt.Errorf("%w: OpenReader: %w", errReadBack, err)
	}
	defer r.Close()
	tree := map[string]fsEntry{}
	for _, n := range r.Archive().Nodes {
		e := fsEntry{Perm: n.Attr.Mode & 0o7777, Uid: n.Attr.Owner.Uid, Gid: n.Attr.Owner.Gid, Ino: n.Attr.Ino}
		switch n.NodeType {
		case common.DirNode:
			e.Type = "dir"
		case common.FileNode:
			e.Type, e.Size, e.Nlink = "file", int64(n.Attr.Size), uint64(n.Attr.Nlink)
			b, err := r.ReadFile(strings.TrimPrefix(n.Path, "/"))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", errReadBack, n.Path, err)
			}
			sum := sha256.Sum256(b)
			e.SHA256 = hex.EncodeToString(sum[:])
		case common.SymLinkNode:
			e.Type, e.Size, e.Target, e.Nlink = "symlink", int64(n.Attr.Size), n.Target, uint64(n.Attr.Nlink)
		default:
			e.Type = "other"
		}
		tree[n.Path] = e
	}
	return tree, nil
}

// errReadBack: ociclip wrote an archive that its own reader cannot read
// back (always a failure, never a refusal).
var errReadBack = errors.New("reading ociclip's archive back")

// applierDiffs lists how an applier's tree (want) differs from ociclip's
// (got), one line per path: "PATH: only in ociclip", "PATH: only in
// <name>", or "PATH: field, field" with the fields of diffTrees plus
// "links" when the other names sharing the path's inode differ. The root
// directory is left out: containerd ignores a layer's "./" entry and keeps
// the extraction directory's attributes.
func applierDiffs(name string, got, want map[string]fsEntry) []string {
	var out []string
	linksOf := func(tree map[string]fsEntry) map[string]string {
		byIno := map[uint64][]string{}
		for p, e := range tree {
			if e.Type != "dir" {
				byIno[e.Ino] = append(byIno[e.Ino], p)
			}
		}
		m := map[string]string{}
		for _, ps := range byIno {
			sort.Strings(ps)
			for _, p := range ps {
				m[p] = strings.Join(ps, " ")
			}
		}
		return m
	}
	gl, wl := linksOf(got), linksOf(want)
	diffs := diffTrees(got, want, true)
	byPath := map[string]int{}
	for i, d := range diffs {
		byPath[d.Path] = i
	}
	for p := range got {
		if _, ok := want[p]; ok && gl[p] != wl[p] {
			if i, ok := byPath[p]; ok {
				diffs[i].Fields = append(diffs[i].Fields, "links")
			} else {
				diffs = append(diffs, treeDiff{Path: p, Fields: []string{"links"}})
			}
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Path < diffs[j].Path })
	for _, d := range diffs {
		switch {
		case d.Path == "/":
		case d.Got == nil && d.Fields == nil:
			out = append(out, d.Path+": only in "+name)
		case d.Want == nil && d.Fields == nil:
			out = append(out, d.Path+": only in ociclip")
		default:
			out = append(out, d.Path+": "+strings.Join(d.Fields, ", "))
		}
	}
	return out
}

// describeTrees renders both trees for a failure message.
func describeTrees(name string, got, want map[string]fsEntry) string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		tree map[string]fsEntry
	}{{"ociclip", got}, {name, want}} {
		fmt.Fprintf(&b, "\n  %s:", side.name)
		var ps []string
		for p := range side.tree {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		for _, p := range ps {
			fmt.Fprintf(&b, "\n    %s %s ino=%d", p, side.tree[p], side.tree[p].Ino)
		}
	}
	return b.String()
}

// oracleWant is what one applier gives for a case, relative to ociclip.
type oracleWant struct {
	// Refuses: the applier fails on the layers (and ociclip accepts them).
	Refuses bool
	// Diffs are the exact applierDiffs lines: the recorded differences
	// (docs/COMPAT.md); none means the same tree.
	Diffs []string
}

// applierCase is one row of TestAppliersAgree.
type applierCase struct {
	name   string
	layers [][]testimage.Entry
	// ociclipRefuses: ociclip refuses the layers; then both appliers must
	// refuse them too (their oracleWants are not used).
	ociclipRefuses    bool
	containerd, umoci oracleWant
}

// ent, dirE, symE, linkE and whE build tar entries for the cases.
func ent(name, body string) testimage.Entry {
	return testimage.Entry{Name: name, Body: []byte(body)}
}
func dirE(name string) testimage.Entry { return testimage.Entry{Name: name, Type: tar.TypeDir} }
func symE(name, target string) testimage.Entry {
	return testimage.Entry{Name: name, Type: tar.TypeSymlink, Linkname: target}
}
func linkE(name, target string) testimage.Entry {
	return testimage.Entry{Name: name, Type: tar.TypeLink, Linkname: target}
}
func whE(name string) testimage.Entry { return testimage.Entry{Name: name, ZeroMode: true} }

func applierCases() []applierCase {
	etc := []testimage.Entry{dirE("etc/"), ent("etc/passwd", "root:x:0:0")}
	with := func(base []testimage.Entry, more ...testimage.Entry) []testimage.Entry {
		return append(slices.Clone(base), more...)
	}
	return []applierCase{
		// Issue 14's two cases, after containerd's breakout tests.
		{name: "hard link through a symlinked directory", layers: [][]testimage.Entry{
			with(etc, symE("localetc", "/etc"), linkE("localpasswd", "localetc/passwd")),
		}},
		{name: "hard link to ../../../../../etc/passwd", layers: [][]testimage.Entry{
			with(etc, linkE("localpasswd", "../../../../../etc/passwd")),
		}},
		{name: "hard link in an upper layer through a relative symlink of a lower one", layers: [][]testimage.Entry{
			with(etc, dirE("usr/"), symE("usr/e", "../etc")),
			{linkE("p", "/usr/e/passwd")},
		}},
		{name: "hard link to a symlink names the symlink, not its target", layers: [][]testimage.Entry{
			with(etc, symE("pw", "etc/passwd"), linkE("l", "pw")),
		}},
		{name: "hard link chain across three layers", layers: [][]testimage.Entry{
			{ent("a", "data")}, {linkE("b", "a")}, {linkE("c", "b")},
		}},
		{name: "hard link whose own name runs through a symlinked directory", layers: [][]testimage.Entry{
			with(etc, symE("le", "etc")),
			{linkE("le/pw2", "etc/passwd")},
		}},
		{name: "hard link to an earlier entry of a path the layer rewrites later", layers: [][]testimage.Entry{
			{ent("f", "one"), linkE("l", "f"), ent("f", "two")},
		}},
		{name: "hard link to a lower file its layer whites out after the link", layers: [][]testimage.Entry{
			{ent("a", "lower")},
			{linkE("b", "a"), whE(".wh.a")},
		}},
		{name: "entry names through relative and absolute symlinked directories", layers: [][]testimage.Entry{
			{dirE("usr/"), dirE("usr/lib/"), symE("lib", "usr/lib"), symE("abs", "/usr")},
			{ent("lib/x.so", "so"), ent("abs/bin/tool", "tool")},
		}},
		{name: "entry name with .. climbing out of the root", layers: [][]testimage.Entry{
			with(etc, ent("usr/../../../etc/climbed", "x")),
		}},
		{name: "symlink to .. above the root used as a parent", layers: [][]testimage.Entry{
			{symE("up", "../../.."), ent("up/etc/f", "x")},
		}},
		{name: "whiteout through a symlinked directory", layers: [][]testimage.Entry{
			{dirE("usr/"), dirE("usr/lib/"), ent("usr/lib/gone", "x"), ent("usr/lib/kept", "y"), symE("lib", "usr/lib")},
			{whE("lib/.wh.gone")},
		}},
		{name: "opaque directory through a symlinked directory", layers: [][]testimage.Entry{
			{dirE("usr/"), dirE("usr/lib/"), ent("usr/lib/a", "a"), ent("usr/lib/b", "b"), symE("lib", "usr/lib")},
			{whE("lib/.wh..wh..opq"), ent("lib/c", "c")},
		}},
		{name: "symlink replaces a directory, then an entry goes through it", layers: [][]testimage.Entry{
			{dirE("d/"), ent("d/f", "f"), dirE("target/")},
			{symE("d", "target")},
			{ent("d/g", "g")},
		}},
		{name: "directory replaces a symlink to a directory", layers: [][]testimage.Entry{
			{dirE("x/"), ent("x/f", "f"), symE("s", "x")},
			{dirE("s/"), ent("s/h", "h")},
		}},
		{name: "file replaces a directory with contents, directory replaces the file", layers: [][]testimage.Entry{
			{dirE("d/"), ent("d/f", "f")},
			{ent("d", "now a file")},
			{dirE("d/"), ent("d/g", "g")},
		}},
		{name: "permission bits of files, directories and their merge", layers: [][]testimage.Entry{
			{{Name: "d/", Type: tar.TypeDir, Mode: 0o700}, {Name: "d/s", Mode: 0o4755, Body: []byte("s")}, {Name: "t/", Type: tar.TypeDir, Mode: 0o1777}},
			{{Name: "d/", Type: tar.TypeDir, Mode: 0o750}, {Name: "d/g", Mode: 0o2711, Body: []byte("g")}},
		}},
		{name: "whiteout of a symlink to a directory removes the symlink only", layers: [][]testimage.Entry{
			{dirE("d/"), ent("d/f", "f"), symE("s", "d")},
			{whE(".wh.s")},
		}},
		{name: "dangling symlink used as a parent creates its target", layers: [][]testimage.Entry{
			{symE("s", "nowhere/deeper"), ent("s/f", "f")},
		}},
		{name: "hard link with a trailing slash through a symlink to a file", layers: [][]testimage.Entry{
			with(etc, symE("pw", "etc/passwd"), linkE("l", "pw/")),
		}, umoci: oracleWant{Diffs: []string{"/etc/passwd: nlink, links", "/l: type, permissions, size/target/content, links", "/pw: nlink, links"}}},
		{name: "hard link to a file its layer's opaque marker hides", layers: [][]testimage.Entry{
			{dirE("d/"), ent("d/f", "f")},
			{whE("d/.wh..wh..opq"), linkE("d/l", "d/f")},
		}, containerd: oracleWant{Refuses: true}, umoci: oracleWant{Refuses: true}},
		{name: "hard link replacing a symlink its own parent path runs through (FuzzAppliers)", layers: [][]testimage.Entry{
			{dirE("/b"), symE("/a", "./b/a/a"), symE("/a/./a", "/b/a/a"), linkE("/a/a/a", "/a")},
		}},
		{name: "FIFO through a symlinked directory hides the lower file", layers: [][]testimage.Entry{
			{dirE("usr/"), dirE("usr/lib/"), ent("usr/lib/f", "f"), ent("usr/lib/g", "g"), symE("lib", "usr/lib")},
			{{Name: "lib/f", Type: tar.TypeFifo}},
		}, containerd: oracleWant{Diffs: []string{"/usr/lib/f: only in containerd"}}, umoci: oracleWant{Diffs: []string{"/usr/lib/f: only in umoci"}}},
		// containerd resolves "/a/a" from its absolute text, where a
		// top-level symlink's target is joined to "/" and its ".."
		// cleaned away: /a -> ./b/.. is "/", and the entry lands at /a.
		// The relative name "a/a" loops (a -> b/.., b -> /a/b).
		{name: "absolute name through a symlink whose target has .. (FuzzAppliers)", layers: [][]testimage.Entry{
			{symE("/a", "./b/.."), symE("/b/.", "/a/b"), symE("/a/a", "/a")},
		}, umoci: oracleWant{Refuses: true}},
		{name: "relative name through the same symlinks loops", ociclipRefuses: true, layers: [][]testimage.Entry{
			{symE("/a", "./b/.."), symE("/b/.", "/a/b"), symE("a/a", "/a")},
		}},
		{name: "a hard link's header sets the owner, mode and times of the inode", layers: [][]testimage.Entry{
			{{Name: "f", Mode: 0o755, Uid: 1, Gid: 2, Body: []byte("f")}, {Name: "s", Type: tar.TypeSymlink, Linkname: "f", Uid: 3}},
			{{Name: "l", Type: tar.TypeLink, Linkname: "f", Mode: 0o640, Uid: 5, Gid: 6}, {Name: "ls", Type: tar.TypeLink, Linkname: "s", Mode: 0o600, Uid: 7}},
			{{Name: "m", Type: tar.TypeLink, Linkname: "l", Mode: 0o4711, Uid: 8, Gid: 9}},
		}, umoci: oracleWant{Diffs: []string{"/f: permissions, owner", "/l: permissions, owner", "/ls: owner", "/m: permissions, owner", "/s: owner"}}},
		// Where the appliers' rules differ (docs/COMPAT.md).
		// A symlink below the root whose relative target has ".." after
		// another symlink: containerd joins the target to the symlink's
		// directory and cleans it lexically ("/d" + "../x/y/.." = "/x");
		// the kernel, and umoci, resolve x/y first (/w/z, then "..": /w).
		{name: ".. after a symlink named in a nested symlink's target (containerd's lexical rule)", layers: [][]testimage.Entry{
			{dirE("d/"), dirE("x/"), dirE("w/"), dirE("w/z/"), symE("x/y", "/w/z"), symE("d/t", "../x/y/.."), ent("d/t/new", "n")},
		}, umoci: oracleWant{Diffs: []string{"/w/new: only in umoci", "/x/new: only in ociclip"}}},
		{name: "hard link through .. after a symlink named in a nested symlink's target", layers: [][]testimage.Entry{
			{dirE("d/"), dirE("x/"), ent("x/f", "x"), dirE("w/"), ent("w/f", "w"), dirE("w/z/"), symE("x/y", "/w/z"), symE("d/t", "../x/y/.."), linkE("l", "d/t/f")},
		}, umoci: oracleWant{Diffs: []string{"/l: size/target/content, links", "/w/f: nlink, links", "/x/f: nlink, links"}}},
		{name: "top-level symlink whose target has .. after a symlink: the same for all three", layers: [][]testimage.Entry{
			{dirE("x/"), dirE("w/"), dirE("w/z/"), symE("x/y", "/w/z"), symE("t", "x/y/.."), ent("t/new", "n"), ent("w/f", "w"), linkE("l", "t/f")},
		}},
		{name: "whiteout after an entry of its own layer", layers: [][]testimage.Entry{
			{ent("a", "lower")},
			{ent("x", "new"), whE(".wh.x"), ent("a", "upper"), whE(".wh.a")},
		}, containerd: oracleWant{Diffs: []string{"/a: only in ociclip", "/x: only in ociclip"}}},
		{name: "hard link to a later entry of its tar", layers: [][]testimage.Entry{
			{linkE("early", "later"), ent("later", "x")},
		}, containerd: oracleWant{Refuses: true}, umoci: oracleWant{Refuses: true}},
		{name: "file in the way of a parent directory", layers: [][]testimage.Entry{
			{ent("f", "file")},
			{ent("f/g", "g")},
		}, containerd: oracleWant{Refuses: true}, umoci: oracleWant{Refuses: true}},
		{name: "whiteout and opaque marker in directories no layer has", layers: [][]testimage.Entry{
			{ent("a", "a")},
			{whE("gone/.wh.x"), whE("op/.wh..wh..opq")},
		}, containerd: oracleWant{Diffs: []string{"/gone: only in containerd", "/op: only in containerd"}}},
		// Refused by all three.
		{name: "symlink loop in a parent path", ociclipRefuses: true, layers: [][]testimage.Entry{
			{symE("a", "b"), symE("b", "a"), ent("a/f", "x")},
		}},
		{name: "hard link to a directory", ociclipRefuses: true, layers: [][]testimage.Entry{
			{dirE("d/"), linkE("l", "d")},
		}},
		{name: "hard link to a missing target", ociclipRefuses: true, layers: [][]testimage.Entry{
			{linkE("l", "nothing")},
		}},
		{name: "hard link replacing the directory of its target", ociclipRefuses: true, layers: [][]testimage.Entry{
			{dirE("d/"), ent("d/f", "f")},
			{linkE("d", "d/f")},
		}},
	}
}

// TestAppliersAgree runs every case of applierCases through ociclip,
// containerd's applier and umoci, and checks that each applier gives
// ociclip's tree, or exactly the recorded difference.
func TestAppliersAgree(t *testing.T) {
	cd := startContainerd(t)
	umoci := umociPath(t)
	for _, c := range applierCases() {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			img, err := writeApplierImage(work, c.layers, testimage.Gzip)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ociclipTree(work, img.dir)
			if errors.Is(err, errReadBack) || (err != nil) != c.ociclipRefuses {
				t.Fatalf("ociclip: err = %v, want refused = %v", err, c.ociclipRefuses)
			}

			root, refused := cd.applyIn(t, work, img.tars)
			checkOracle(t, "containerd", c, c.containerd, refused, got, root)

			dest := filepath.Join(work, "umoci")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, umoci, "raw", "unpack", "--image", img.dir+":t", dest).CombinedOutput()
			if err != nil {
				refused = fmt.Errorf("%v: %s", err, out)
			} else {
				refused = nil
			}
			checkOracle(t, "umoci", c, c.umoci, refused, got, dest)
		})
	}
}

// checkOracle compares one applier's outcome (refused, else the tree at
// root) with ociclip's (got) and the case's expectation.
func checkOracle(t *testing.T, name string, c applierCase, w oracleWant, refused error, got map[string]fsEntry, root string) {
	t.Helper()
	switch {
	case c.ociclipRefuses || w.Refuses:
		if refused == nil {
			t.Errorf("%s accepts the layers; recorded as refusing them%s", name, describeTrees(name, got, walkTree(t, root)))
		}
		return
	case refused != nil:
		t.Errorf("%s refuses the layers: %v", name, refused)
		return
	}
	want := walkTree(t, root)
	if d := applierDiffs(name, got, want); !slices.Equal(d, w.Diffs) {
		t.Errorf("%s differs from ociclip:\n  %s\nrecorded:\n  %s%s", name, strings.Join(d, "\n  "), strings.Join(w.Diffs, "\n  "), describeTrees(name, got, want))
	}
}

// TestAppliersAgreeOnMount: issue 14's two layers (the first two cases of
// applierCases) index, and mount with clip's own FUSE code (blobs served
// by an in-process registry), with the tree containerd's applier and umoci
// produce: /localpasswd a second name of /etc/passwd.
func TestAppliersAgreeOnMount(t *testing.T) {
	requireFUSE(t)
	cd := startContainerd(t)
	umoci := umociPath(t)
	quietClip(t)
	reg := registrytest.Start(t)
	for _, c := range applierCases()[:2] {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			img, err := writeApplierImage(work, c.layers, testimage.Gzip)
			if err != nil {
				t.Fatal(err)
			}
			ref := reg.PushLayout(t, img.dir, "t", "test/issue14:t")
			archivePath := filepath.Join(work, "image.clip")
			if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: img.dir, LayoutRef: "t", StorageImageRef: ref, OutputPath: archivePath}); err != nil {
				t.Fatalf("ociclip: %v", err)
			}
			got := walkTree(t, mountClip(t, archivePath))
			if p := got["/localpasswd"]; p.Type != "file" || p.Nlink != 2 || p.Ino != got["/etc/passwd"].Ino {
				t.Errorf("/localpasswd on the mount: %s ino %d; /etc/passwd ino %d", p, p.Ino, got["/etc/passwd"].Ino)
			}

			root, refused := cd.applyIn(t, work, img.tars)
			if refused != nil {
				t.Fatalf("containerd: %v", refused)
			}
			dest := filepath.Join(work, "umoci")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if out, err := exec.CommandContext(ctx, umoci, "raw", "unpack", "--image", img.dir+":t", dest).CombinedOutput(); err != nil {
				t.Fatalf("umoci: %v: %s", err, out)
			}
			for name, dir := range map[string]string{"containerd": root, "umoci": dest} {
				want := walkTree(t, dir)
				if d := applierDiffs(name, got, want); len(d) > 0 {
					t.Errorf("the mount differs from %s:\n  %s%s", name, strings.Join(d, "\n  "), describeTrees(name, got, want))
				}
			}
		})
	}
}
