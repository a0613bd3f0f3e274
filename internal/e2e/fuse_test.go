package e2e_test

// FUSE test against clip's own mount (issue #3, docs/COMPAT.md).
//
// ociclip's archive of each test image is mounted with clip.MountArchive;
// clip fetches the layer blobs from the loopback registry through the
// reference stored in the archive and serves files at the stored offsets.
// The mounted tree is compared, path by path, with two independent
// references: testimage.Replay of the layer tars (always), and umoci's own
// extraction (`umoci raw unpack`) for the images whose semantics umoci
// implements.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"

	"github.com/ociclip/ociclip/internal/fusetest"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testenv"
	"github.com/ociclip/ociclip/internal/testimage"
)

// requireFUSE skips (fails with CI=true) when this machine cannot mount FUSE.
func requireFUSE(t *testing.T) {
	t.Helper()
	var why []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = append(why, "/dev/fuse is missing ("+err.Error()+")")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		why = append(why, "fusermount3 is not in PATH (install fuse3)")
	}
	if len(why) == 0 {
		return
	}
	testenv.Missing(t, "FUSE is unavailable: %s", strings.Join(why, "; "))
}

// umociPath returns umoci's path; missing umoci fails with CI=true and
// skips otherwise.
func umociPath(t *testing.T) string {
	t.Helper()
	return testenv.LookPath(t, "umoci")
}

// fsEntry is what the test compares for one path.
type fsEntry struct {
	Type   string // "dir", "file", "symlink" or "other"
	Perm   uint32 // mode & 07777, special bits included
	Size   int64  // files and symlinks
	Target string // symlinks
	SHA256 string // files
	Uid    uint32
	Gid    uint32
	Nlink  uint64 // files and symlinks
	Ino    uint64 // as the file system reports it
}

func (e fsEntry) String() string {
	s := fmt.Sprintf("%s %#o uid=%d gid=%d", e.Type, e.Perm, e.Uid, e.Gid)
	if e.Type != "dir" {
		s += fmt.Sprintf(" size=%d nlink=%d", e.Size, e.Nlink)
	}
	if e.Target != "" {
		s += fmt.Sprintf(" target=%q", e.Target)
	}
	if e.SHA256 != "" {
		s += " sha256=" + e.SHA256[:min(16, len(e.SHA256))]
		if len(e.SHA256) != 64 {
			s += e.SHA256[16:]
		}
	}
	return s
}

// walkTree lstat()s every path under root (without following symlinks) and
// hashes every regular file.
func walkTree(t *testing.T, root string) map[string]fsEntry {
	t.Helper()
	out := map[string]fsEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := "/"
		if rel != "." {
			key = "/" + filepath.ToSlash(rel)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		e := fsEntry{Perm: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid, Ino: st.Ino}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			e.Type = "dir"
		case syscall.S_IFREG:
			e.Type, e.Size, e.Nlink = "file", st.Size, uint64(st.Nlink)
			// A read error or a short read is recorded in place of the
			// hash, so the comparison reports it with everything else.
			b, err := os.ReadFile(p)
			switch {
			case err != nil:
				e.SHA256 = "read error: " + err.Error()
			case int64(len(b)) != st.Size:
				e.SHA256 = fmt.Sprintf("read %d bytes, stat says %d", len(b), st.Size)
			default:
				sum := sha256.Sum256(b)
				e.SHA256 = hex.EncodeToString(sum[:])
			}
		case syscall.S_IFLNK:
			e.Type, e.Size, e.Nlink = "symlink", st.Size, uint64(st.Nlink)
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			e.Type = "other"
		}
		out[key] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// replayTree is testimage.Replay of the layer tars as fsEntries. Layers that
// end early (umoci-insert: no end-of-archive blocks, no padding after the
// last file) are padded to whole blocks plus two zero blocks first: the
// same entries, in a stream Go's tar reader accepts.
func replayTree(t *testing.T, tars [][]byte) map[string]fsEntry {
	t.Helper()
	padded := make([][]byte, len(tars))
	for i, b := range tars {
		pad := (512 - len(b)%512) % 512
		padded[i] = append(append(bytes.Clone(b), make([]byte, pad)...), make([]byte, 1024)...)
	}
	tree, err := testimage.Replay(padded)
	if err != nil {
		t.Fatalf("testimage.Replay: %v", err)
	}
	out := make(map[string]fsEntry, len(tree))
	for p, n := range tree {
		e := fsEntry{Type: n.Type, Perm: uint32(n.Mode), Uid: uint32(n.Uid), Gid: uint32(n.Gid)}
		if n.Type != "dir" {
			e.Size, e.Target, e.SHA256, e.Nlink = n.Size, n.Linkname, n.SHA256, uint64(n.Nlink)
		}
		out[p] = e
	}
	return out
}

// treeDiff is one path at which two trees differ: the fields that differ
// (nil when the path is in only one of them) and both entries (nil where
// absent).
type treeDiff struct {
	Path      string
	Fields    []string
	Got, Want *fsEntry
}

// diffTrees returns every path, sorted, whose type, permission bits, owner
// (with compareOwner), size, symlink target, content hash or (non-directory)
// link count differ. Directory sizes and link counts are file system
// specific and not compared, nor are symlink permissions.
func diffTrees(got, want map[string]fsEntry, compareOwner bool) []treeDiff {
	var paths []string
	seen := map[string]bool{}
	for p := range got {
		seen[p] = true
		paths = append(paths, p)
	}
	for p := range want {
		if !seen[p] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []treeDiff
	for _, p := range paths {
		g, gok := got[p]
		w, wok := want[p]
		switch {
		case !gok:
			out = append(out, treeDiff{Path: p, Want: &w})
			continue
		case !wok:
			out = append(out, treeDiff{Path: p, Got: &g})
			continue
		}
		var fields []string
		if g.Type != w.Type {
			fields = append(fields, "type")
		}
		if g.Perm != w.Perm && !(g.Type == "symlink" && w.Type == "symlink") {
			fields = append(fields, "permissions")
		}
		if compareOwner && (g.Uid != w.Uid || g.Gid != w.Gid) {
			fields = append(fields, "owner")
		}
		if g.Type != "dir" && (g.Size != w.Size || g.Target != w.Target || g.SHA256 != w.SHA256) {
			fields = append(fields, "size/target/content")
		}
		if g.Type != "dir" && g.Nlink != w.Nlink {
			fields = append(fields, "nlink")
		}
		if len(fields) > 0 {
			out = append(out, treeDiff{Path: p, Fields: fields, Got: &g, Want: &w})
		}
	}
	return out
}

// compareTrees reports the diffTrees of the mount (got) and a reference.
func compareTrees(t *testing.T, what string, got, want map[string]fsEntry, compareOwner bool) {
	t.Helper()
	var bad []string
	for _, d := range diffTrees(got, want, compareOwner) {
		switch {
		case d.Got == nil:
			bad = append(bad, fmt.Sprintf("%s: missing from the mount; %s has %s", d.Path, what, d.Want))
		case d.Want == nil:
			bad = append(bad, fmt.Sprintf("%s: in the mount (%s) but not in %s", d.Path, d.Got, what))
		default:
			bad = append(bad, fmt.Sprintf("%s: %s differ\n      mount: %s\n      %s: %s", d.Path, strings.Join(d.Fields, ", "), d.Got, what, d.Want))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 15 {
			bad = append(bad[:15], fmt.Sprintf("... and %d more", len(bad)-15))
		}
		t.Errorf("mount differs from %s at %d paths:\n  %s", what, len(bad), strings.Join(bad, "\n  "))
	}
}

// fuseWatchdog bounds how long one image may stay mounted.
const fuseWatchdog = 120 * time.Second

// mountClip mounts archive with clip.MountArchive and unmounts it in
// t.Cleanup (server.Unmount, then `fusermount3 -u -z` if that fails).
func mountClip(t *testing.T, archivePath string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	cache := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	start, serverErr, server, err := clip.MountArchive(clip.MountOptions{
		ArchivePath: archivePath, MountPoint: mnt, CachePath: cache,
	})
	if err != nil {
		t.Fatalf("clip.MountArchive: %v", err)
	}
	watchdog := startWatchdog(t, mnt)
	// Registered after t.TempDir, so it runs before the directories are
	// removed, and after the registry's registration, so before it stops.
	t.Cleanup(func() {
		defer watchdog.stop()
		if err := server.Unmount(); err != nil {
			t.Logf("server.Unmount: %v; trying fusermount3 -u -z", err)
			if out, err := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput(); err != nil {
				t.Errorf("fusermount3 -u -z %s: %v: %s", mnt, err, out)
			}
		}
		select {
		case <-serverErr:
		case <-time.After(10 * time.Second):
			t.Errorf("FUSE server for %s did not stop", mnt)
		}
		if fusetest.IsMounted(mnt) {
			t.Errorf("%s is still mounted", mnt)
		}
	})
	if err := start(); err != nil {
		t.Fatalf("starting the FUSE server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !fusetest.IsMounted(mnt) {
		select {
		case err := <-serverErr:
			t.Fatalf("FUSE server stopped before the mount was up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 10s", mnt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fusetest.DisablePoll(t, mnt)
	return mnt
}

// watchdog is a separate process that, if the test has not unmounted mnt
// after fuseWatchdog (a wedged test binary, or one killed by go test's
// timeout), aborts the FUSE connection (when fusectl is mounted) and
// detaches the mount, so that no mount is left behind.
type watchdog struct{ cmd *exec.Cmd }

func startWatchdog(t *testing.T, mnt string) *watchdog {
	t.Helper()
	abort := ""
	if dev := fusetest.MountDevice(mnt); dev != "" {
		if _, minor, ok := strings.Cut(dev, ":"); ok {
			abort = fmt.Sprintf("f=/sys/fs/fuse/connections/%s/abort; [ -w $f ] && echo 1 > $f; ", minor)
		}
	}
	script := fmt.Sprintf(`sleep %d; %sexec fusermount3 -u -z "$0"`, int(fuseWatchdog.Seconds()), abort)
	cmd := exec.Command("sh", "-c", script, mnt)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the mount watchdog: %v", err)
	}
	return &watchdog{cmd}
}

// stop kills the watchdog's process group (sh and its sleep).
func (w *watchdog) stop() {
	syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	w.cmd.Wait()
}

// pread is one positioned read done through the mount.
type pread struct {
	path string
	off  int64
	data []byte
}

// randomPreads reads a few ranges of every regular file at random offsets
// with ReadAt, before anything else touched the files (so the kernel page
// cache cannot answer them), including ranges that cross the end of file.
func randomPreads(t *testing.T, mnt string, want map[string]fsEntry, seed uint64) []pread {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	var paths []string
	for p, e := range want {
		if e.Type == "file" && e.Size > 0 {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []pread
	for _, p := range paths {
		size := want[p].Size
		n := 2
		if size > 1<<20 {
			n = 12
		}
		f, err := os.Open(filepath.Join(mnt, p))
		if err != nil {
			t.Errorf("open %s on the mount: %v", p, err) // the tree comparison says more
			continue
		}
		for i := 0; i < n; i++ {
			off := r.Int64N(size)
			ln := 1 + r.Int64N(min(64<<10, size))
			if i == n-1 {
				off = max(0, size-ln/2) // across the end of file
			}
			buf := make([]byte, ln)
			k, err := f.ReadAt(buf, off)
			if err != nil && k != int(min(ln, size-off)) {
				t.Errorf("pread %s at %d (%d bytes): %d bytes, %v", p, off, ln, k, err)
			}
			out = append(out, pread{path: p, off: off, data: buf[:k]})
		}
		f.Close()
	}
	return out
}

// checkPreads compares the positioned reads with the whole files read from
// dir (whose content hashes were checked against the reference).
func checkPreads(t *testing.T, dir string, reads []pread) {
	t.Helper()
	for _, rd := range reads {
		b, err := os.ReadFile(filepath.Join(dir, rd.path))
		if err != nil || rd.off > int64(len(b)) {
			t.Errorf("pread %s at offset %d: cannot read the whole file to compare (%d bytes, %v)", rd.path, rd.off, len(b), err)
			continue
		}
		end := min(rd.off+int64(len(rd.data)), int64(len(b)))
		if want := b[rd.off:end]; !bytes.Equal(rd.data, want) {
			t.Errorf("pread %s at offset %d: %d bytes differ from the file's content (%d bytes expected)", rd.path, rd.off, len(rd.data), len(want))
		}
	}
}

func TestFUSEMountMatchesReference(t *testing.T) {
	requireFUSE(t)
	quietClip(t)
	reg := registrytest.Start(t)
	for i, img := range compatImages(t) {
		t.Run(img.Name, func(t *testing.T) {
			ref := reg.PushLayout(t, img.Dir, img.LayoutRef, "test/"+img.Name+":"+img.LayoutRef)
			archivePath := buildOciclip(t, img, ref)
			tars := img.Tars
			if img.ReplayTars != nil {
				tars = img.ReplayTars
			}
			want := replayTree(t, tars)

			mnt := mountClip(t, archivePath)
			before := reg.BlobGets("")
			reads := randomPreads(t, mnt, want, uint64(i))
			got := walkTree(t, mnt)
			if reg.BlobGets("") == before && len(reads) > 0 {
				t.Errorf("reading through the mount fetched no blob from the registry")
			}
			checkPreads(t, mnt, reads)
			if len(reads) == 0 {
				t.Errorf("no regular file to read")
			}
			compareTrees(t, "testimage.Replay", got, want, true)
			checkHardLinkInodes(t, got, want)

			if !img.Umoci {
				return
			}
			t.Run("umoci", func(t *testing.T) {
				umoci := umociPath(t)
				dest := filepath.Join(t.TempDir(), "rootfs")
				args := []string{"raw", "unpack"}
				rootless := os.Geteuid() != 0
				if rootless {
					args = append(args, "--rootless")
				}
				args = append(args, "--image", img.Dir+":"+img.LayoutRef, dest)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if out, err := exec.CommandContext(ctx, umoci, args...).CombinedOutput(); err != nil {
					t.Fatalf("umoci %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				ref := walkTree(t, dest)
				compareTrees(t, "umoci raw unpack", got, ref, !rootless)
				checkPreads(t, dest, reads)
			})
		})
	}
}

// checkHardLinkInodes checks that names the reference calls one inode (hard
// links) are one inode on the mount, and that nothing else shares one.
func checkHardLinkInodes(t *testing.T, got, want map[string]fsEntry) {
	t.Helper()
	byIno := map[uint64][]string{}
	for p, e := range got {
		if e.Type != "dir" {
			byIno[e.Ino] = append(byIno[e.Ino], p)
		}
	}
	for ino, ps := range byIno {
		sort.Strings(ps)
		if len(ps) > 1 && uint64(len(ps)) != got[ps[0]].Nlink {
			t.Errorf("inode %d is shared by %v but has nlink %d", ino, ps, got[ps[0]].Nlink)
		}
		for _, p := range ps {
			if w, ok := want[p]; ok && w.Nlink != uint64(len(ps)) {
				t.Errorf("%s: %d names share its inode on the mount (%v), the reference has nlink %d", p, len(ps), ps, w.Nlink)
			}
		}
	}
}
