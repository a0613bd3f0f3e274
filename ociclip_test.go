package ociclip_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"
	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/ociread"
)

// index runs CreateFromOCILayout on a testdata layout and decodes the result
// with clip's own ExtractMetadata.
func index(t *testing.T, layout, ref string) (*ociclip.Result, *common.ClipArchiveMetadata, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.clip")
	res, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: layout, LayoutRef: ref, StorageImageRef: testimage.BusyboxStorageRef, OutputPath: out,
	})
	if err != nil {
		t.Fatalf("CreateFromOCILayout(%s): %v", layout, err)
	}
	md, err := clip.NewClipArchiver().ExtractMetadata(out)
	if err != nil {
		t.Fatalf("clip ExtractMetadata: %v", err)
	}
	return res, md, out
}

func node(t *testing.T, md *common.ClipArchiveMetadata, p string) *common.ClipNode {
	t.Helper()
	n := md.Get(p)
	if n == nil {
		t.Fatalf("no node %s", p)
	}
	return n
}

func TestBusyboxAgainstContract(t *testing.T) {
	res, md, _ := index(t, "testdata/busybox", "1.35")
	if res.Layers != 3 || res.Nodes != md.Index.Len() {
		t.Errorf("result %+v, index has %d nodes", res, md.Index.Len())
	}
	info, ok := md.StorageInfo.(common.OCIStorageInfo)
	if !ok {
		t.Fatalf("storage info is %T", md.StorageInfo)
	}
	if info.RegistryURL != "index.docker.io" || info.Repository != "library/busybox" || info.Reference != "1.35" {
		t.Errorf("storage ref %s %s %s", info.RegistryURL, info.Repository, info.Reference)
	}

	// Expected image facts read independently from the layout with plain JSON.
	var cfg v1.Image
	var man v1.Manifest
	readJSON(t, "testdata/busybox", manifestDigest(t, "testdata/busybox"), &man)
	readJSON(t, "testdata/busybox", man.Config.Digest.String(), &cfg)
	if len(info.Layers) != len(man.Layers) {
		t.Fatalf("layers %v", info.Layers)
	}
	for i, l := range man.Layers {
		d := l.Digest.String()
		if info.Layers[i] != d {
			t.Errorf("layer %d = %s, want %s", i, info.Layers[i], d)
		}
		if got := info.DecompressedHashByLayer[d]; "sha256:"+got != cfg.RootFS.DiffIDs[i].String() {
			t.Errorf("decompressed hash of %s = %s, want %s", d, got, cfg.RootFS.DiffIDs[i])
		}
		g := info.GzipIdxByLayer[d]
		if g == nil || g.LayerDigest != d {
			t.Fatalf("no gzip index for %s", d)
		}
		for j, c := range g.Checkpoints {
			if c.UOff == 0 || c.COff == 0 || (j > 0 && c.UOff <= g.Checkpoints[j-1].UOff) {
				t.Errorf("layer %s checkpoint %d = %+v", d, j, c)
			}
		}
	}
	im := info.ImageMetadata
	if im == nil || im.Digest != manifestDigest(t, "testdata/busybox") || im.Architecture != cfg.Architecture || im.Os != cfg.OS ||
		!im.Created.Equal(*cfg.Created) || strings.Join(im.Cmd, " ") != "/bin/sh" || im.WorkingDir != "/root" ||
		len(im.LayersData) != 3 || im.LayersData[0].MIMEType != v1.MediaTypeImageLayerGzip || im.Name != testimage.BusyboxStorageRef {
		t.Errorf("image metadata %+v", im)
	}
	if _, ok := im.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v", im.ExposedPorts)
	}

	root := node(t, md, "/")
	if root.Attr.Ino != 1 || root.NodeType != common.DirNode || root.Attr.Mtime != uint64(cfg.Created.Unix()) {
		t.Errorf("root %+v", root.Attr)
	}
	for _, gone := range []string{"/etc/hostname", "/bin/cat", "/usr/share/doc/busybox-static/examples/udhcp"} {
		if md.Get(gone) != nil {
			t.Errorf("%s should be whited out", gone)
		}
	}
	if n := node(t, md, "/tmp"); n.Attr.Mode != syscall.S_IFDIR|0o1777 {
		t.Errorf("/tmp mode %o", n.Attr.Mode)
	}
	if n := node(t, md, "/usr/local/bin/suid-demo"); n.Attr.Mode != syscall.S_IFREG|0o4755 {
		t.Errorf("suid mode %o", n.Attr.Mode)
	}
	motd, issue := node(t, md, "/etc/motd"), node(t, md, "/etc/issue")
	if motd.Attr.Ino != issue.Attr.Ino || motd.Attr.Nlink != 2 || *motd.Remote != *issue.Remote {
		t.Errorf("hard link motd %+v issue %+v", motd, issue)
	}
	bb, tr := node(t, md, "/bin/busybox"), node(t, md, "/bin/true")
	if bb.Attr.Ino != tr.Attr.Ino || bb.Attr.Nlink != 2 || bb.Attr.Size != 1982256 {
		t.Errorf("busybox %+v true %+v", bb.Attr, tr.Attr)
	}
	if n := node(t, md, "/var/empty"); n.NodeType != common.DirNode || md.Get("/var/empty/file") == nil {
		t.Errorf("/var/empty %+v", n)
	}
	if n := node(t, md, "/bin/ls"); n.NodeType != common.SymLinkNode || n.Target != "/bin/busybox" || n.Attr.Size != uint64(len("/bin/busybox")) {
		t.Errorf("/bin/ls %+v", n)
	}
	if n := node(t, md, "/usr"); n.NodeType != common.DirNode {
		t.Errorf("/usr %+v", n)
	}

	checkFileBytes(t, "testdata/busybox", md)
}

// checkFileBytes reads every regular file's bytes at its recorded layer and
// offset from an independent decompression of the layer and compares them
// with the content archive/tar gives for the same entry.
func checkFileBytes(t *testing.T, dir string, md *common.ClipArchiveMetadata) {
	t.Helper()
	streams := map[string][]byte{}
	content := map[string]map[string][32]byte{} // layer -> clean path -> sha256
	uncompressed := func(d string) []byte {
		if s, ok := streams[d]; ok {
			return s
		}
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(b)
		switch {
		case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		s, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		streams[d] = s
		m := map[string][32]byte{}
		tr := tar.NewReader(bytes.NewReader(s))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Typeflag == tar.TypeReg {
				c, _ := io.ReadAll(tr)
				m[path.Clean("/"+h.Name)] = sha256.Sum256(c)
			}
		}
		content[d] = m
		return s
	}
	files := 0
	md.Index.Ascend(md.Index.Min(), func(a interface{}) bool {
		n := a.(*common.ClipNode)
		if n.NodeType != common.FileNode {
			return true
		}
		files++
		s := uncompressed(n.Remote.LayerDigest)
		if n.Remote.UOffset < 0 || n.Remote.UOffset+n.Remote.ULength > int64(len(s)) {
			t.Errorf("%s: remote %+v outside the %d-byte stream", n.Path, n.Remote, len(s))
			return true
		}
		got := sha256.Sum256(s[n.Remote.UOffset : n.Remote.UOffset+n.Remote.ULength])
		found := false
		for _, want := range content[n.Remote.LayerDigest] {
			if want == got {
				found = true
				break
			}
		}
		if want, ok := content[n.Remote.LayerDigest][n.Path]; ok && want != got {
			t.Errorf("%s: bytes at offset %d differ from the tar entry", n.Path, n.Remote.UOffset)
		} else if !found {
			t.Errorf("%s: bytes at offset %d match no file of layer %s", n.Path, n.Remote.UOffset, n.Remote.LayerDigest)
		}
		return true
	})
	if files == 0 {
		t.Fatal("no files checked")
	}
}

func manifestDigest(t *testing.T, dir string) string {
	t.Helper()
	var idx v1.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests[0].Digest.String()
}

func readJSON(t *testing.T, dir, d string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// The same image with zstd and uncompressed layers gives the same tree: the
// uncompressed tars are identical, so everything but the layer digests (and
// the inodes derived from them) must match.
func TestCompressionsGiveSameTree(t *testing.T) {
	_, gz, _ := index(t, "testdata/busybox", "1.35")
	for _, dir := range []string{"testdata/busybox-zstd", "testdata/busybox-plain"} {
		t.Run(dir, func(t *testing.T) {
			_, md, _ := index(t, dir, "1.35")
			if md.Index.Len() != gz.Index.Len() {
				t.Fatalf("%d nodes, gzip variant has %d", md.Index.Len(), gz.Index.Len())
			}
			info := md.StorageInfo.(common.OCIStorageInfo)
			if len(info.GzipIdxByLayer) != 0 {
				t.Errorf("gzip index on a non-gzip image: %v", info.GzipIdxByLayer)
			}
			if strings.HasSuffix(dir, "zstd") && len(info.ZstdIdxByLayer) != 3 {
				t.Errorf("zstd index: %v", info.ZstdIdxByLayer)
			}
			gz.Index.Ascend(gz.Index.Min(), func(a interface{}) bool {
				want := a.(*common.ClipNode)
				got := md.Get(want.Path)
				if got == nil {
					t.Errorf("missing %s", want.Path)
					return true
				}
				wa, ga := want.Attr, got.Attr
				wa.Ino, ga.Ino = 0, 0
				if wa != ga || want.NodeType != got.NodeType || want.Target != got.Target {
					t.Errorf("%s: %+v vs %+v", want.Path, got, want)
				}
				if (want.Remote == nil) != (got.Remote == nil) || want.Remote != nil &&
					(want.Remote.UOffset != got.Remote.UOffset || want.Remote.ULength != got.Remote.ULength) {
					t.Errorf("%s: remote %+v vs %+v", want.Path, got.Remote, want.Remote)
				}
				return true
			})
			checkFileBytes(t, dir, md)
		})
	}
}

func TestReproducible(t *testing.T) {
	_, _, a := index(t, "testdata/busybox", "1.35")
	// Let encoding/gob see other types in between, which shifts its
	// process-global type ids.
	if _, err := clip.NewClipArchiver().ExtractMetadata(a); err != nil {
		t.Fatal(err)
	}
	_, _, b := index(t, "testdata/busybox", "1.35")
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatalf("two runs differ (%d vs %d bytes)", len(ab), len(bb))
	}
}

// ReleaseMemory only changes when memory is collected: the archive and the
// result are the same.
func TestReleaseMemorySameOutput(t *testing.T) {
	resA, _, a := index(t, "testdata/busybox", "1.35")
	b := filepath.Join(t.TempDir(), "b.clip")
	resB, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: "testdata/busybox", LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef, OutputPath: b, ReleaseMemory: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatalf("ReleaseMemory changed the archive (%d vs %d bytes)", len(ab), len(bb))
	}
	resA.Duration, resB.Duration = 0, 0
	resB.OutputPath = resA.OutputPath
	if !reflect.DeepEqual(resA, resB) {
		t.Fatalf("ReleaseMemory changed the result:\n%+v\n%+v", resA, resB)
	}
}

// Layers are started largest blob first, so that a large layer does not run
// alone at the end.
func TestLayersStartLargestFirst(t *testing.T) {
	var mu sync.Mutex
	var sizes []int64
	// Manifest order: small, large, middle (uncompressed random bytes).
	var layers []testimage.Layer
	for i, n := range []int{1 << 10, 64 << 10, 16 << 10} {
		body := make([]byte, n)
		rand.New(rand.NewSource(int64(i))).Read(body)
		layers = append(layers, testimage.Layer{Compression: testimage.None, Entries: []testimage.Entry{{Name: fmt.Sprintf("f%d", i), Body: body}}})
	}
	dir := t.TempDir()
	if _, err := testimage.Write(dir, testimage.Ref{Name: "x", Image: &testimage.Image{Layers: layers}}); err != nil {
		t.Fatal(err)
	}
	_, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: dir, OutputPath: filepath.Join(t.TempDir(), "o.clip"), Concurrency: 1,
		LayerProgress: func(p ociclip.LayerProgress) {
			if p.Stage == ociclip.StageStarting {
				mu.Lock()
				sizes = append(sizes, p.CompressedTotal)
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 || !slices.IsSortedFunc(sizes, func(a, b int64) int { return cmp.Compare(b, a) }) || sizes[0] == sizes[2] {
		t.Fatalf("layers started in the order of sizes %v, want largest first", sizes)
	}
}

func TestProgressEvents(t *testing.T) {
	ch := make(chan ociclip.Progress, 100)
	out := filepath.Join(t.TempDir(), "o.clip")
	_, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: "testdata/busybox", OutputPath: out, ProgressChan: ch, Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	last := 0
loop:
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatal("ociclip closed the caller's channel")
			}
			if p.TotalLayers != 3 || p.LayerDigest == "" || p.Message == "" {
				t.Errorf("event %+v", p)
			}
			if p.Stage == "completed" {
				if p.FilesIndexed <= last {
					t.Errorf("FilesIndexed not growing: %+v", p)
				}
				last = p.FilesIndexed
			}
			got = append(got, p.Stage)
		default:
			break loop
		}
	}
	if strings.Join(got, ",") != "starting,completed,starting,completed,starting,completed" {
		t.Errorf("stages %v", got)
	}
}

func TestCancelledLeavesNoOutput(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "o.clip")
	_, err := ociclip.CreateFromOCILayout(ctx, ociclip.Options{LayoutPath: "testdata/busybox", OutputPath: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("left files behind: %v", entries)
	}
}

func TestFailureLeavesExistingOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "o.clip")
	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: "testdata/busybox", LayoutRef: "nope", OutputPath: out})
	if !errors.Is(err, ociread.ErrRefNotFound) || !strings.Contains(err.Error(), "1.35") {
		t.Fatalf("err = %v (want ErrRefNotFound listing 1.35)", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("output changed: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left files behind: %v", entries)
	}
}

func TestNoStorageRefWarns(t *testing.T) {
	res, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: "testdata/busybox", OutputPath: filepath.Join(t.TempDir(), "o.clip")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "cannot mount") {
		t.Errorf("warnings %q", res.Warnings)
	}
}

// Docker schema 2 media types and a two-platform nested index, end to end.
func TestDockerMediaTypesAndPlatforms(t *testing.T) {
	img := func(marker string, docker bool, c testimage.Compression) testimage.Image {
		return testimage.Image{DockerMediaTypes: docker, Layers: []testimage.Layer{
			{Compression: c, Entries: []testimage.Entry{{Name: "etc/", Type: '5'}, {Name: "etc/marker", Body: []byte(marker)}}},
			{Compression: c, Entries: []testimage.Entry{{Name: "etc/.wh.marker"}, {Name: "etc/which", Body: []byte(marker)}}},
		}}
	}
	dir := t.TempDir()
	oci, docker := img("oci", false, testimage.Gzip), img("oci", true, testimage.Gzip)
	_, err := testimage.Write(dir,
		testimage.Ref{Name: "oci", Image: &oci},
		testimage.Ref{Name: "docker", Image: &docker},
		testimage.Ref{Name: "multi", Platforms: []testimage.PlatformImage{
			{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: img("amd64", true, testimage.Gzip)},
			{Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, Image: img("arm64", true, testimage.Zstd)},
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	run := func(ref string, plat *v1.Platform) *common.ClipArchiveMetadata {
		t.Helper()
		out := filepath.Join(t.TempDir(), "o.clip")
		if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: dir, LayoutRef: ref, Platform: plat, OutputPath: out}); err != nil {
			t.Fatalf("%s %v: %v", ref, plat, err)
		}
		md, err := clip.NewClipArchiver().ExtractMetadata(out)
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	o, d := run("oci", nil), run("docker", nil)
	if got := d.StorageInfo.(common.OCIStorageInfo).ImageMetadata.LayersData[0].MIMEType; got != "application/vnd.docker.image.rootfs.diff.tar.gzip" {
		t.Errorf("docker layer media type %q", got)
	}
	if o.Index.Len() != d.Index.Len() || d.Get("/etc/marker") != nil || d.Get("/etc/which") == nil {
		t.Errorf("docker image tree: %d vs %d nodes", d.Index.Len(), o.Index.Len())
	}
	// The layer bytes are the same, so the nodes are identical.
	o.Index.Ascend(o.Index.Min(), func(a interface{}) bool {
		n := a.(*common.ClipNode)
		if m := d.Get(n.Path); m == nil || m.Attr != n.Attr || (n.Remote != nil && *m.Remote != *n.Remote) {
			t.Errorf("%s differs between OCI and Docker media types", n.Path)
		}
		return true
	})
	for arch, want := range map[string]string{"amd64": "amd64", "arm64": "arm64"} {
		md := run("multi", &v1.Platform{OS: "linux", Architecture: arch})
		n := md.Get("/etc/which")
		info := md.StorageInfo.(common.OCIStorageInfo)
		if n == nil || n.Attr.Size != uint64(len(want)) || info.ImageMetadata.Architecture != arch {
			t.Errorf("platform %s: node %+v, config arch %s", arch, n, info.ImageMetadata.Architecture)
		}
		if want == "arm64" && len(info.ZstdIdxByLayer) != 2 {
			t.Errorf("arm64 image should have zstd layers: %v", info.ZstdIdxByLayer)
		}
	}
	_, err = ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: dir, LayoutRef: "multi",
		Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}, OutputPath: filepath.Join(t.TempDir(), "x.clip")})
	if !errors.Is(err, ociread.ErrPlatformNotFound) || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("missing platform: %v", err)
	}
}

// An output that cannot be written fails before any layer is read, and
// the check leaves nothing in the output's directory.
func TestOutputCheckedBeforeIndexing(t *testing.T) {
	dir := t.TempDir()
	var started atomic.Int32
	o := ociclip.Options{LayoutPath: "testdata/busybox", LayoutRef: "1.35",
		LayerProgress: func(p ociclip.LayerProgress) { started.Add(1) }}
	for _, tc := range []struct {
		out  string
		want error
	}{{filepath.Join(dir, "missing", "o.clip"), fs.ErrNotExist}, {dir, syscall.EISDIR}} {
		o.OutputPath = tc.out
		if _, err := ociclip.CreateFromOCILayout(context.Background(), o); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), filepath.Dir(tc.out)) {
			t.Errorf("%s: error %v, want %v naming the path", tc.out, err, tc.want)
		}
	}
	if n := started.Load(); n != 0 {
		t.Errorf("%d layer events before the output was found unwritable", n)
	}
	o.OutputPath = filepath.Join(dir, "o.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "o.clip" {
		t.Errorf("directory holds %v, want only o.clip", ents)
	}
}
