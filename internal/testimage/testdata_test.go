package testimage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const testdataDir = "../../testdata"

// TestCommittedTestdata checks the real-tool layouts under testdata/ with
// plain encoding/json: index.json parses, every blob's name is its digest,
// every descriptor's size and digest match, DiffIDs match the layers.
func TestCommittedTestdata(t *testing.T) {
	layouts := map[string]string{ // dir -> layer media type
		"busybox":       v1.MediaTypeImageLayerGzip,
		"busybox-zstd":  v1.MediaTypeImageLayerZstd,
		"busybox-plain": v1.MediaTypeImageLayer,
		"umoci-insert":  v1.MediaTypeImageLayerGzip,
	}
	trees := map[string]map[string]ReplayNode{}
	for name, layerMT := range layouts {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(testdataDir, name)
			var lay v1.ImageLayout
			readJSONT(t, filepath.Join(dir, "oci-layout"), &lay)
			if lay.Version != "1.0.0" {
				t.Fatalf("oci-layout version %q", lay.Version)
			}
			checkBlobs(t, dir)
			var idx v1.Index
			readJSONT(t, filepath.Join(dir, "index.json"), &idx)
			if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[v1.AnnotationRefName] != "1.35" {
				t.Fatalf("index.json: %+v", idx)
			}
			md := idx.Manifests[0]
			if md.MediaType != v1.MediaTypeImageManifest {
				t.Fatalf("manifest media type %q", md.MediaType)
			}
			var man v1.Manifest
			if err := json.Unmarshal(checkDescriptor(t, dir, md), &man); err != nil {
				t.Fatal(err)
			}
			var cfg v1.Image
			if err := json.Unmarshal(checkDescriptor(t, dir, man.Config), &cfg); err != nil {
				t.Fatal(err)
			}
			if len(man.Layers) != 3 || len(cfg.RootFS.DiffIDs) != 3 {
				t.Fatalf("%d layers, %d diff_ids", len(man.Layers), len(cfg.RootFS.DiffIDs))
			}
			var tars [][]byte
			for i, l := range man.Layers {
				if l.MediaType != layerMT {
					t.Errorf("layer %d media type %q", i, l.MediaType)
				}
				tb, err := Decompress(checkDescriptor(t, dir, l))
				if err != nil {
					t.Fatal(err)
				}
				if digest.FromBytes(tb) != cfg.RootFS.DiffIDs[i] {
					t.Errorf("layer %d: diff_id mismatch", i)
				}
				tars = append(tars, tb)
			}
			viaHelper, err := LayoutLayerTars(dir, "1.35")
			if err != nil || !reflect.DeepEqual(viaHelper, tars) {
				t.Fatalf("LayoutLayerTars: %v", err)
			}
			tree, err := Replay(tars)
			if err != nil {
				t.Fatal(err)
			}
			if name == "umoci-insert" {
				checkUmociInsert(t, tars, tree)
				return
			}
			trees[name] = tree
			checkBusybox(t, tree)
		})
	}
	if !reflect.DeepEqual(trees["busybox"], trees["busybox-zstd"]) || !reflect.DeepEqual(trees["busybox"], trees["busybox-plain"]) {
		t.Error("the three busybox layouts do not merge to the same tree")
	}
}

// checkUmociInsert checks the quirks and the merged tree of umoci-insert
// described in testdata/README.md.
func checkUmociInsert(t *testing.T, tars [][]byte, m map[string]ReplayNode) {
	t.Helper()
	// Layer 2 lacks the padding after its last file and the end blocks, layer
	// 3 the end blocks (umoci issue #436).
	if len(tars[1]) != 1599 || len(tars[2]) != 512 {
		t.Errorf("uncompressed layer sizes %d, %d; want 1599, 512", len(tars[1]), len(tars[2]))
	}
	want := "/ /etc /etc/hostname /usr /usr/share /usr/share/doc /usr/share/doc/busybox-static /usr/share/doc/busybox-static/README"
	if got := paths(m); got != want {
		t.Errorf("paths\n got %s\nwant %s", got, want)
	}
}

// checkBusybox checks the merged tree described in testdata/README.md.
func checkBusybox(t *testing.T, m map[string]ReplayNode) {
	t.Helper()
	for _, gone := range []string{"/etc/hostname", "/bin/cat", "/usr/share/doc/busybox-static/examples/udhcp", "/usr/share/doc/busybox-static/examples/udhcp/sample.nak"} {
		if _, ok := m[gone]; ok {
			t.Errorf("%s survived its whiteout", gone)
		}
	}
	bb := m["/bin/busybox"]
	if bb.Type != "file" || bb.Size != 1982256 || bb.Mode != 0o755 || bb.Nlink != 2 {
		t.Errorf("/bin/busybox %+v", bb)
	}
	if tr := m["/bin/true"]; tr.SHA256 != bb.SHA256 || tr.Nlink != 2 {
		t.Errorf("/bin/true %+v", tr)
	}
	if ls := m["/bin/ls"]; ls.Type != "symlink" || ls.Linkname != "/bin/busybox" {
		t.Errorf("/bin/ls %+v", ls)
	}
	if m["/etc/motd"].SHA256 != m["/etc/issue"].SHA256 || m["/etc/motd"].Nlink != 2 || m["/etc/motd"].Type != "file" {
		t.Errorf("/etc/motd %+v /etc/issue %+v", m["/etc/motd"], m["/etc/issue"])
	}
	if m["/var/empty"].Type != "dir" || m["/var/empty/file"].Type != "file" {
		t.Errorf("/var/empty %+v", m["/var/empty"])
	}
	if m["/tmp"].Mode != 0o1777 || m["/usr/local/bin/suid-demo"].Mode != 0o4755 || m["/root"].Mode != 0o700 {
		t.Errorf("special modes: /tmp %o suid-demo %o /root %o", m["/tmp"].Mode, m["/usr/local/bin/suid-demo"].Mode, m["/root"].Mode)
	}
	if u := m["/home/user/notes.txt"]; u.Uid != 1000 || u.Gid != 1000 {
		t.Errorf("/home/user/notes.txt %+v", u)
	}
	if g := m["/etc/group"]; g.Mode != 0o600 {
		t.Errorf("/etc/group mode %o", g.Mode)
	}
	if m["/"].Synthesized || m["/usr"].Synthesized {
		t.Errorf("root or /usr synthesized")
	}
	if m["/opt/app/bin/app-link"].Nlink != 2 || m["/opt/app/bin/app-sym"].Linkname != "app" {
		t.Errorf("/opt/app/bin: %+v %+v", m["/opt/app/bin/app-link"], m["/opt/app/bin/app-sym"])
	}
	if _, err := os.Stat(filepath.Join(testdataDir, "make-testdata.sh")); err != nil {
		t.Errorf("make-testdata.sh: %v", err)
	}
}
