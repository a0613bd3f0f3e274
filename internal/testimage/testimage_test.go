package testimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func sampleImage() *Image {
	return &Image{
		Layers: []Layer{
			{Entries: []Entry{
				{Name: "./", Type: tar.TypeDir},
				{Name: "etc/", Type: tar.TypeDir},
				{Name: "etc/passwd", Body: []byte("root:x:0:0::/root:/bin/sh\n")},
				{Name: "bin/sh", Type: tar.TypeSymlink, Linkname: "busybox"},
				{Name: "bin/busybox", Body: bytes.Repeat([]byte("busybox "), 9000), Mode: 0o755},
			}},
			{Entries: []Entry{{Name: "etc/.wh.passwd", ZeroMode: true}, {Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777}}, Compression: GzipMulti},
			{Entries: []Entry{{Name: "a", Body: []byte("zstd layer")}}, Compression: ZstdMulti},
			{Entries: []Entry{{Name: "b", Body: []byte("plain layer")}}, Compression: None, Annotations: map[string]string{"k": "v"}},
		},
		Config: ConfigOptions{
			Env:          []string{"PATH=/bin"},
			Cmd:          []string{"/bin/sh"},
			Labels:       map[string]string{"z": "1", "a": "2"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
			StopSignal:   "SIGTERM",
		},
	}
}

func readJSONT(t *testing.T, p string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return b
}

// checkBlobs verifies that every blob file's name is the digest of its bytes.
func checkBlobs(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no blobs in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(b).Encoded(); got != filepath.Base(f) {
			t.Errorf("blob %s has digest %s", f, got)
		}
	}
}

// checkDescriptor verifies that d's blob exists with d's size and digest.
func checkDescriptor(t *testing.T, dir string, d v1.Descriptor) []byte {
	t.Helper()
	b, err := os.ReadFile(BlobPath(dir, d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != d.Size || digest.FromBytes(b) != d.Digest {
		t.Fatalf("descriptor %s: size %d digest %s", d.Digest, len(b), digest.FromBytes(b))
	}
	return b
}

func TestWriteParseBack(t *testing.T) {
	dir := t.TempDir()
	l, err := Write(dir, Ref{Name: "1.0", Image: sampleImage()}, Ref{Name: "", Image: &Image{}})
	if err != nil {
		t.Fatal(err)
	}
	var lay v1.ImageLayout
	readJSONT(t, filepath.Join(dir, "oci-layout"), &lay)
	if lay.Version != "1.0.0" {
		t.Fatalf("oci-layout %+v", lay)
	}
	var idx v1.Index
	raw := readJSONT(t, filepath.Join(dir, "index.json"), &idx)
	if idx.SchemaVersion != 2 || len(idx.Manifests) != 2 {
		t.Fatalf("index %s", raw)
	}
	if got := idx.Manifests[0].Annotations[v1.AnnotationRefName]; got != "1.0" {
		t.Fatalf("ref name %q", got)
	}
	if idx.Manifests[1].Annotations != nil {
		t.Fatalf("unnamed ref has annotations %v", idx.Manifests[1].Annotations)
	}
	checkBlobs(t, dir)

	w := l.Images["1.0"]
	var man v1.Manifest
	if err := json.Unmarshal(checkDescriptor(t, dir, idx.Manifests[0]), &man); err != nil {
		t.Fatal(err)
	}
	if idx.Manifests[0].MediaType != v1.MediaTypeImageManifest || man.MediaType != v1.MediaTypeImageManifest {
		t.Fatalf("manifest media types %q %q", idx.Manifests[0].MediaType, man.MediaType)
	}
	if !reflect.DeepEqual(man, w.Manifest) || w.ManifestDigest != idx.Manifests[0].Digest {
		t.Fatalf("Written.Manifest differs from the file")
	}
	var cfg v1.Image
	if err := json.Unmarshal(checkDescriptor(t, dir, man.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if man.Config.MediaType != v1.MediaTypeImageConfig {
		t.Fatalf("config media type %q", man.Config.MediaType)
	}
	if !cfg.Created.Equal(DefaultTime) || cfg.OS != "linux" || cfg.Architecture == "" ||
		cfg.Config.StopSignal != "SIGTERM" || cfg.Config.Labels["a"] != "2" || len(cfg.History) != 4 {
		t.Fatalf("config %+v", cfg)
	}
	wantMT := []string{v1.MediaTypeImageLayerGzip, v1.MediaTypeImageLayerGzip, v1.MediaTypeImageLayerZstd, v1.MediaTypeImageLayer}
	for i, ld := range man.Layers {
		blob := checkDescriptor(t, dir, ld)
		if ld.MediaType != wantMT[i] {
			t.Errorf("layer %d media type %q", i, ld.MediaType)
		}
		tarb, err := Decompress(blob)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tarb, w.LayerTars[i]) {
			t.Errorf("layer %d: decompressed blob differs from LayerTars", i)
		}
		if digest.FromBytes(tarb) != cfg.RootFS.DiffIDs[i] || cfg.RootFS.DiffIDs[i] != w.DiffIDs[i] {
			t.Errorf("layer %d: diff_id mismatch", i)
		}
	}
	if man.Layers[3].Annotations["k"] != "v" {
		t.Errorf("layer annotations %v", man.Layers[3].Annotations)
	}

	// Entry positions point at the bodies.
	for i, e := range sampleImage().Layers[0].Entries {
		p := w.EntryPositions[0][i]
		if got := w.LayerTars[0][p.DataOffset : p.DataOffset+p.DataLength]; !bytes.Equal(got, e.Body) {
			t.Errorf("entry %q: data at %d differs", e.Name, p.DataOffset)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, err := Write(t.TempDir(), Ref{Name: "x", Image: sampleImage()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Write(t.TempDir(), Ref{Name: "x", Image: sampleImage()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Images["x"].ManifestDigest != b.Images["x"].ManifestDigest {
		t.Fatal("two writes of the same image differ")
	}
	ia, _ := os.ReadFile(filepath.Join(a.Dir, "index.json"))
	ib, _ := os.ReadFile(filepath.Join(b.Dir, "index.json"))
	if !bytes.Equal(ia, ib) {
		t.Fatal("index.json differs")
	}
}

func TestDockerMediaTypes(t *testing.T) {
	img := sampleImage()
	img.DockerMediaTypes = true
	l, err := Write(t.TempDir(), Ref{Name: "d", Image: img})
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	readJSONT(t, BlobPath(l.Dir, l.Images["d"].ManifestDigest), &man)
	if man["mediaType"] != MediaTypeDockerManifest {
		t.Fatalf("manifest mediaType %v", man["mediaType"])
	}
	if l.Index.Manifests[0].MediaType != MediaTypeDockerManifest {
		t.Fatalf("index descriptor %q", l.Index.Manifests[0].MediaType)
	}
	m := l.Images["d"].Manifest
	if m.Config.MediaType != MediaTypeDockerConfig {
		t.Fatalf("config %q", m.Config.MediaType)
	}
	want := []string{MediaTypeDockerLayerGzip, MediaTypeDockerLayerGzip, MediaTypeDockerLayerZstd, MediaTypeDockerLayer}
	for i, d := range m.Layers {
		if d.MediaType != want[i] {
			t.Errorf("layer %d %q", i, d.MediaType)
		}
	}
}

func TestNestedIndex(t *testing.T) {
	one := func() Image { return Image{Layers: []Layer{{Entries: []Entry{{Name: "f", Body: []byte("x")}}}}} }
	plats := []PlatformImage{
		{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: one()},
		{Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Image: one()},
	}
	l, err := Write(t.TempDir(), Ref{Name: "multi", Platforms: plats})
	if err != nil {
		t.Fatal(err)
	}
	d := l.Index.Manifests[0]
	if d.MediaType != v1.MediaTypeImageIndex || d.Annotations[v1.AnnotationRefName] != "multi" || l.Nested["multi"].Digest != d.Digest {
		t.Fatalf("index.json descriptor %+v", d)
	}
	var nested v1.Index
	if err := json.Unmarshal(checkDescriptor(t, l.Dir, d), &nested); err != nil {
		t.Fatal(err)
	}
	if len(nested.Manifests) != 2 || nested.Manifests[1].Platform == nil || nested.Manifests[1].Platform.Variant != "v7" {
		t.Fatalf("nested %+v", nested)
	}
	w := l.Images["multi@linux/arm/v7"]
	if w == nil || w.Config.Architecture != "arm" || w.Config.Variant != "v7" || w.ManifestDigest != nested.Manifests[1].Digest {
		t.Fatalf("arm image %+v", w)
	}
	checkBlobs(t, l.Dir)

	for i := range plats {
		plats[i].Image.DockerMediaTypes = true
	}
	l, err = Write(t.TempDir(), Ref{Name: "multi", Platforms: plats})
	if err != nil {
		t.Fatal(err)
	}
	if l.Index.Manifests[0].MediaType != MediaTypeDockerManifestList {
		t.Fatalf("docker list media type %q", l.Index.Manifests[0].MediaType)
	}
	tars, err := LayoutLayerTars(l.Dir, "multi")
	if err != nil || len(tars) != 1 {
		t.Fatalf("LayoutLayerTars: %d %v", len(tars), err)
	}
}

// gzipMembers decompresses blob member by member.
func gzipMembers(t *testing.T, blob []byte) [][]byte {
	t.Helper()
	br := bytes.NewReader(blob)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		zr.Multistream(false)
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		err = zr.Reset(br)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// zstdFrameSizes walks the frames of a zstd stream by their headers and
// returns the kind ("z" data frame, "s" skippable) of each.
func zstdFrameKinds(t *testing.T, b []byte) string {
	t.Helper()
	var kinds string
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("short frame")
		}
		magic := binary.LittleEndian.Uint32(b)
		if magic&0xFFFFFFF0 == 0x184D2A50 {
			n := binary.LittleEndian.Uint32(b[4:])
			b = b[8+n:]
			kinds += "s"
			continue
		}
		if magic != 0xFD2FB528 {
			t.Fatalf("bad magic %x", magic)
		}
		fhd := b[4]
		single := fhd&0x20 != 0
		n := 5
		if !single {
			n++ // window descriptor
		}
		n += []int{0, 1, 2, 4}[fhd&3]
		fcs := []int{0, 2, 4, 8}[fhd>>6]
		if fhd>>6 == 0 && single {
			fcs = 1
		}
		n += fcs
		b = b[n:]
		for {
			h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			last, typ, size := h&1 == 1, (h>>1)&3, int(h>>3)
			if typ == 1 {
				size = 1
			}
			b = b[3+size:]
			if last {
				break
			}
		}
		if fhd&4 != 0 {
			b = b[4:]
		}
		kinds += "z"
	}
	return kinds
}

func TestMultiMemberAndFrames(t *testing.T) {
	tb, err := TarBytes([]Entry{
		{Name: "a", Body: bytes.Repeat([]byte("a"), 3000)},
		{Name: "big", Body: bytes.Repeat([]byte("0123456789"), 20000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	gz, err := Compress(tb, GzipMulti)
	if err != nil {
		t.Fatal(err)
	}
	members := gzipMembers(t, gz)
	splits := DefaultSplits(int64(len(tb)))
	if len(members) != len(splits)+1 || len(members) < 3 {
		t.Fatalf("%d members, splits %v", len(members), splits)
	}
	if len(members[0]) != 512 || !bytes.Equal(bytes.Join(members, nil), tb) {
		t.Fatalf("members do not split at %v", splits)
	}

	// Explicit splits with an empty member in the middle and at the end.
	gz, err = CompressSplit(tb, GzipMulti, []int64{1024, 1024, int64(len(tb))})
	if err != nil {
		t.Fatal(err)
	}
	if m := gzipMembers(t, gz); len(m) != 4 || len(m[1]) != 0 || len(m[3]) != 0 {
		t.Fatalf("explicit split members: %d", len(m))
	}

	for c, want := range map[Compression]string{Zstd: "z", ZstdMulti: strings.Repeat("z", len(splits)+1), ZstdSkippable: "s" + strings.Repeat("zs", len(splits)+1)} {
		zb, err := Compress(tb, c)
		if err != nil {
			t.Fatal(err)
		}
		if got := zstdFrameKinds(t, zb); got != want {
			t.Errorf("%s: frames %q, want %q", c, got, want)
		}
		back, err := Decompress(zb)
		if err != nil || !bytes.Equal(back, tb) {
			t.Errorf("%s: round trip failed: %v", c, err)
		}
	}

	for _, c := range []Compression{Gzip, GzipFlush, GzipStored, GzipStdlib, None} {
		b, err := Compress(tb, c)
		if err != nil {
			t.Fatal(err)
		}
		if c != None && len(gzipMembers(t, b)) != 1 {
			t.Errorf("%s: not one member", c)
		}
		back, err := Decompress(b)
		if err != nil || !bytes.Equal(back, tb) {
			t.Errorf("%s: round trip failed: %v", c, err)
		}
		if c == GzipFlush && bytes.Count(b, []byte{0, 0, 0xff, 0xff}) < len(splits) {
			t.Errorf("gzip-flush: fewer sync-flush markers than splits")
		}
	}
}

func TestTarFeatures(t *testing.T) {
	long := strings.Repeat("d/", 60) + "file"
	// > 4 fragments: needs an extension block. Fragment lengths are 512
	// but for the last, so that GNU tar reads it the same way.
	var sparseBody []byte
	var frags []SparseFragment
	for i := 0; i < 6; i++ {
		n := 512
		if i == 5 {
			n = 7
		}
		frags = append(frags, SparseFragment{Offset: int64(i) * 1024, Length: int64(n)})
		sparseBody = append(sparseBody, bytes.Repeat([]byte{byte('A' + i)}, n)...)
	}
	entries := []Entry{
		{Name: "nano", Body: []byte("n"), ModTime: NanoTime, AccessTime: NanoTime.Add(time.Second), ChangeTime: NanoTime.Add(2 * time.Second)},
		{Name: "v7", Body: []byte("old"), TypeflagNUL: true},
		{Name: long, Body: []byte("long")},
		{Name: "sparse", Type: tar.TypeGNUSparse, Body: sparseBody, Sparse: frags, SparseSize: 6000},
		{Name: "epoch", ZeroTime: true},
		{Name: "old", ModTime: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Name: "dev", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
		{Name: "x", Body: []byte("x"), PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		{Raw: make([]byte, 0)},
	}
	tb, pos, err := TarWithPositions(entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb)%512 != 0 || !bytes.Equal(tb[len(tb)-1024:], make([]byte, 1024)) {
		t.Fatal("no end blocks")
	}
	tr := tar.NewReader(bytes.NewReader(tb))
	for i := 0; i < len(entries)-1; i++ {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		body, _ := io.ReadAll(tr)
		e := entries[i]
		if h.Name != e.Name {
			t.Errorf("name %q want %q", h.Name, e.Name)
		}
		if e.Sparse == nil && !bytes.Equal(tb[pos[i].DataOffset:pos[i].DataOffset+pos[i].DataLength], e.Body) {
			t.Errorf("%s: position wrong", e.Name)
		}
		if len(h.Name) <= 100 && !bytes.HasPrefix(tb[pos[i].HeaderOffset:], []byte(h.Name)) {
			t.Errorf("%s: header offset wrong", e.Name)
		}
		switch e.Name {
		case "nano":
			if !h.ModTime.Equal(NanoTime) || !h.AccessTime.Equal(NanoTime.Add(time.Second)) || !h.ChangeTime.Equal(NanoTime.Add(2*time.Second)) {
				t.Errorf("nano times %v %v %v", h.ModTime, h.AccessTime, h.ChangeTime)
			}
		case "v7":
			if tb[pos[i].HeaderOffset+156] != 0 || h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
				t.Errorf("v7 typeflag %q", h.Typeflag)
			}
		case "sparse":
			want := make([]byte, 6000)
			for j, f := range frags {
				copy(want[f.Offset:], sparseBody[512*j:512*j+int(f.Length)])
			}
			if !bytes.Equal(body, want) || h.Size != 6000 {
				t.Errorf("sparse: size %d, content differs: %v", h.Size, !bytes.Equal(body, want))
			}
			if !bytes.Equal(tb[pos[i].DataOffset:pos[i].DataOffset+pos[i].DataLength], sparseBody) || pos[i].DataOffset != pos[i].HeaderOffset+1024 {
				t.Errorf("sparse: positions %+v", pos[i])
			}
		case "epoch":
			if h.ModTime.Unix() != 0 {
				t.Errorf("epoch %v", h.ModTime)
			}
		case "old":
			if h.ModTime.Year() != 1960 {
				t.Errorf("old %v", h.ModTime)
			}
		case "x":
			if h.PAXRecords["SCHILY.xattr.user.k"] != "v" {
				t.Errorf("pax %v", h.PAXRecords)
			}
		default:
			if e.ModTime.IsZero() && !e.ZeroTime && !h.ModTime.Equal(DefaultTime) {
				t.Errorf("%s: default time %v", e.Name, h.ModTime)
			}
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("trailing: %v", err)
	}
	if _, err := TarBytes([]Entry{{Name: "l", Type: tar.TypeSymlink, Body: []byte("x")}}); err == nil {
		t.Fatal("Body on a symlink accepted")
	}
}

func TestCorruptBlob(t *testing.T) {
	l, err := Write(t.TempDir(), Ref{Name: "x", Image: sampleImage()})
	if err != nil {
		t.Fatal(err)
	}
	d := l.Images["x"].LayerDigests[0]
	if err := CorruptBlob(l.Dir, d, FlipByte(-1)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(BlobPath(l.Dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) == d || int64(len(b)) != l.Images["x"].Manifest.Layers[0].Size {
		t.Fatal("corruption did not change the digest, or changed the size")
	}
}

func TestRawConfigAndEdits(t *testing.T) {
	img := &Image{
		Layers:       []Layer{{Entries: []Entry{{Name: "a"}}}},
		EditConfig:   func(c *v1.Image) { c.RootFS.DiffIDs[0] = digest.FromString("wrong") },
		EditManifest: func(m *v1.Manifest) { m.Layers[0].Size++ },
	}
	l, err := Write(t.TempDir(), Ref{Name: "x", Image: img}, Ref{Name: "raw", Image: &Image{RawConfig: []byte("not json")}})
	if err != nil {
		t.Fatal(err)
	}
	w := l.Images["x"]
	if w.Config.RootFS.DiffIDs[0] == w.DiffIDs[0] || w.Manifest.Layers[0].Size != int64(len(w.LayerBlobs[0]))+1 {
		t.Fatal("edits not applied")
	}
	b, _ := os.ReadFile(BlobPath(l.Dir, l.Images["raw"].ConfigDigest))
	if string(b) != "not json" {
		t.Fatal("raw config not written verbatim")
	}
}

// layerTars builds uncompressed layers from entry lists.
func layerTars(t *testing.T, layers ...[]Entry) [][]byte {
	t.Helper()
	var out [][]byte
	for _, es := range layers {
		b, err := TarBytes(es)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func dir(n string) Entry                   { return Entry{Name: n, Type: tar.TypeDir} }
func file(n, body string) Entry            { return Entry{Name: n, Body: []byte(body)} }
func wh(n string) Entry                    { return Entry{Name: n, ZeroMode: true, ZeroTime: true} }
func symlink(n, target string) Entry       { return Entry{Name: n, Type: tar.TypeSymlink, Linkname: target} }
func hardlink(n, target string) Entry      { return Entry{Name: n, Type: tar.TypeLink, Linkname: target} }
func paths(m map[string]ReplayNode) string { return strings.Join(SortedPaths(m), " ") }

func TestReplay(t *testing.T) {
	base := []Entry{
		dir("./"), dir("a/"), file("a/x", "ax"), dir("a/sub/"), file("a/sub/y", "y"),
		dir("b/"), file("b/z", "z"), file("top", "top"),
	}
	cases := []struct {
		name   string
		layers [][]Entry
		want   string // sorted paths
		check  func(t *testing.T, m map[string]ReplayNode)
	}{
		{"base", [][]Entry{base}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top", nil},
		{"opaque dir", [][]Entry{base, {wh("a/.wh..wh..opq"), file("a/new", "n")}},
			"/ /a /a/new /b /b/z /top", nil},
		{"opaque dir after its new entries", [][]Entry{base, {dir("a/"), file("a/new", "n"), wh("a/.wh..wh..opq")}},
			"/ /a /a/new /b /b/z /top", nil},
		{"opaque at root", [][]Entry{base, {wh(".wh..wh..opq"), file("only", "o")}},
			"/ /only", nil},
		{"opaque at root ./ prefix", [][]Entry{base, {wh("./.wh..wh..opq")}}, "/", nil},
		{"whiteout file", [][]Entry{base, {wh("a/.wh.x")}}, "/ /a /a/sub /a/sub/y /b /b/z /top", nil},
		{"whiteout dir", [][]Entry{base, {wh("/a/.wh.sub"), wh(".wh.b")}}, "/ /a /a/x /top", nil},
		{"whiteout of missing path", [][]Entry{base, {wh("nope/.wh.q")}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top", nil},
		{"file replaces dir", [][]Entry{base, {file("a", "now a file")}}, "/ /a /b /b/z /top",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/a"].Type != "file" || m["/a"].Size != 10 {
					t.Errorf("/a = %+v", m["/a"])
				}
			}},
		{"symlink replaces dir", [][]Entry{base, {symlink("b", "a")}}, "/ /a /a/sub /a/sub/y /a/x /b /top", nil},
		{"dir replaces file", [][]Entry{base, {dir("top/"), file("top/in", "i")}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top /top/in", nil},
		{"dir over dir keeps children", [][]Entry{base, {{Name: "a", Type: tar.TypeDir, Mode: 0o700, Uid: 5}}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/a"].Mode != 0o700 || m["/a"].Uid != 5 {
					t.Errorf("/a = %+v", m["/a"])
				}
			}},
		{"same-layer whiteout before entry", [][]Entry{base, {wh("a/.wh.x"), file("a/x", "again")}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/a/x"].Size != 5 {
					t.Errorf("/a/x = %+v", m["/a/x"])
				}
			}},
		{"same-layer whiteout after entry", [][]Entry{base, {file("a/x", "again"), wh("a/.wh.x"), file("c", "c"), wh(".wh.c")}},
			"/ /a /a/sub /a/sub/y /a/x /b /b/z /c /top", nil},
		{"whiteout in a later layer removes it", [][]Entry{base, {file("c", "c")}, {wh(".wh.c")}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /top", nil},
		{"missing parents", [][]Entry{{{Name: "p/q/r", Body: []byte("r"), ModTime: NanoTime}}}, "/ /p /p/q /p/q/r",
			func(t *testing.T, m map[string]ReplayNode) {
				if n := m["/p/q"]; n.Type != "dir" || n.Mode != 0o755 || !n.Synthesized || !n.ModTime.Equal(NanoTime) {
					t.Errorf("/p/q = %+v", n)
				}
				if !m["/"].Synthesized {
					t.Errorf("root not synthesized")
				}
			}},
		{"root entry sets root attributes", [][]Entry{{{Name: "./", Type: tar.TypeDir, Mode: 0o700, Uid: 7}}}, "/",
			func(t *testing.T, m map[string]ReplayNode) {
				if r := m["/"]; r.Mode != 0o700 || r.Uid != 7 || r.Synthesized {
					t.Errorf("root %+v", r)
				}
			}},
		{"path forms", [][]Entry{{file("./a/../b", "b"), file("/abs", "x"), file("c//d", "")}}, "/ /abs /b /c /c/d", nil},
		{"special bits kept", [][]Entry{{{Name: "tmp", Type: tar.TypeDir, Mode: 0o1777}, {Name: "su", Body: []byte("s"), Mode: 0o4755}}}, "/ /su /tmp",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/tmp"].Mode != 0o1777 || m["/su"].Mode != 0o4755 {
					t.Errorf("modes %o %o", m["/tmp"].Mode, m["/su"].Mode)
				}
			}},
		{"hard links", [][]Entry{base, {
			hardlink("l1", "a/x"),   // target in a lower layer
			hardlink("l2", "later"), // target later in the same layer
			file("later", "later content"),
			symlink("s", "top"), hardlink("ls", "s"), // link to a symlink
		}}, "/ /a /a/sub /a/sub/y /a/x /b /b/z /l1 /l2 /later /ls /s /top",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/l1"].SHA256 != m["/a/x"].SHA256 || m["/l1"].Nlink != 2 || m["/a/x"].Nlink != 2 {
					t.Errorf("l1 %+v a/x %+v", m["/l1"], m["/a/x"])
				}
				if m["/l2"].Size != 13 || m["/later"].Nlink != 2 {
					t.Errorf("l2 %+v", m["/l2"])
				}
				if m["/ls"].Type != "symlink" || m["/ls"].Linkname != "top" || m["/s"].Nlink != 2 {
					t.Errorf("ls %+v", m["/ls"])
				}
				if m["/top"].Nlink != 1 {
					t.Errorf("top %+v", m["/top"])
				}
			}},
		{"hard link survives replacement of its target", [][]Entry{{file("t", "old"), hardlink("l", "t"), file("t", "newer")}}, "/ /l /t",
			func(t *testing.T, m map[string]ReplayNode) {
				if m["/l"].Size != 3 || m["/t"].Size != 5 || m["/l"].Nlink != 1 {
					t.Errorf("l %+v t %+v", m["/l"], m["/t"])
				}
			}},
		{"device replaces file and is skipped", [][]Entry{base, {{Name: "top", Type: tar.TypeFifo}, {Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3}}},
			"/ /a /a/sub /a/sub/y /a/x /b /b/z /dev", nil},
		{"sparse file", [][]Entry{{{Name: "sp", Type: tar.TypeGNUSparse, Body: []byte("xy"), Sparse: []SparseFragment{{Offset: 10, Length: 2}}, SparseSize: 20}}}, "/ /sp",
			func(t *testing.T, m map[string]ReplayNode) {
				want := make([]byte, 20)
				copy(want[10:], "xy")
				if m["/sp"].Size != 20 || m["/sp"].SHA256 != sha256Hex(want) {
					t.Errorf("sp %+v", m["/sp"])
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Replay(layerTars(t, c.layers...))
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(m); got != c.want {
				t.Errorf("paths\n got %s\nwant %s", got, c.want)
			}
			if c.check != nil {
				c.check(t, m)
			}
		})
	}

	errCases := []struct {
		name   string
		layers [][]Entry
		want   error
	}{
		{"link to missing", [][]Entry{{hardlink("l", "nope")}}, ErrLinkTarget},
		{"link to dir", [][]Entry{{dir("d"), hardlink("l", "d")}}, ErrLinkTarget},
		{"parent is a file", [][]Entry{{file("f", ""), file("f/g", "")}}, ErrParentNotDir},
		{"parent is a symlink", [][]Entry{{symlink("lib", "usr/lib")}, {file("lib/x", "")}}, ErrParentNotDir},
		{"file at root", [][]Entry{{file(".", "")}}, ErrRootNotDir},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Replay(layerTars(t, c.layers...))
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}
