package ociread

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestOCIArchiveSkopeo: `skopeo copy oci:testdata/busybox:1.35
// oci-archive:bb.tar:1.35`, then the archive must resolve to the very image
// the directory resolves to, and every blob must read and verify, served as
// a section of the tar file.
func TestOCIArchiveSkopeo(t *testing.T) {
	tarPath := filepath.Join(t.TempDir(), "bb.tar")
	skopeoCopy(t, "oci:"+busyboxDir+":1.35", "oci-archive:"+tarPath+":1.35")
	want := dirImage(t, busyboxDir, "1.35")

	l, src := openSrc(t, "oci-archive:"+tarPath+":1.35")
	if src != (Source{Transport: TransportOCIArchive, Path: tarPath, Ref: "1.35"}) {
		t.Fatalf("ParseSource = %+v", src)
	}
	if got := fmt.Sprint(l.Refs()); got != "[1.35]" {
		t.Errorf("Refs() = %s", got)
	}
	im := mustResolve(t, l, Select{Ref: src.Ref})
	sameImage(t, im, want)
	if im.RefName != "1.35" || im.ManifestDescriptor.Digest != busyboxManifest {
		t.Errorf("RefName %q, manifest %s", im.RefName, im.ManifestDescriptor.Digest)
	}
	blobs := readAll(t, l, im)
	for i, b := range blobs {
		dirBlob, err := os.ReadFile(testimage.BlobPath(busyboxDir, im.Layers[i].Digest))
		if err != nil || !bytes.Equal(b, dirBlob) {
			t.Errorf("layer %d differs from the directory's blob (%v)", i, err)
		}
	}
	// Served in place: the verifier reads a section of the archive.
	rc, err := l.OpenBlob(im.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(*verifier).r.(*io.SectionReader); !ok {
		t.Errorf("layer reader is %T, want a section of the tar", rc.(*verifier).r)
	}
	rc.Close()
	if _, err := l.BlobPath(im.Layers[0].Digest); err == nil {
		t.Errorf("BlobPath of an archive blob succeeded")
	}

	// By digest, and with the default (only) image.
	for _, ref := range []string{"", "@" + busyboxManifest, busyboxManifest} {
		sameImage(t, mustResolve(t, l, Select{Ref: ref}), want)
	}
	_, err = l.Resolve(context.Background(), Select{Ref: "1.36"})
	wantErr(t, err, ErrRefNotFound, `"1.35"`, tarPath)

	// After Close, blobs are gone; Close is idempotent.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = l.OpenBlob(im.Layers[0])
	wantErr(t, err, ErrBlobMissing, "closed")
}

// TestOCIArchiveGo: an OCI layout tar made in Go with "./" names, PAX and
// GNU headers, directory entries, a symlinked and a hard-linked blob, a
// duplicate index.json (the last one wins) and members that must be
// ignored ("../x", "/abs").
func TestOCIArchiveGo(t *testing.T) {
	want := dirImage(t, busyboxDir, "1.35")
	var es []tentry
	es = append(es, tentry{name: "./index.json", body: []byte(`{"schemaVersion":2,"manifests":[]}`)}) // replaced below
	for _, e := range layoutEntries(t, busyboxDir, "./") {
		switch {
		case strings.HasSuffix(e.name, want.ConfigDescriptor.Digest.Encoded()):
			// The config blob as a symlink to a file elsewhere.
			es = append(es, tentry{name: "./elsewhere/config", body: e.body},
				tentry{name: e.name, typ: tar.TypeSymlink, link: "../../elsewhere/config"})
		case strings.HasSuffix(e.name, want.Layers[1].Digest.Encoded()):
			// A layer as a hard link; the data comes first under another name.
			es = append(es, tentry{name: "./blobs/other", body: e.body, format: tar.FormatGNU},
				tentry{name: e.name, typ: tar.TypeLink, link: "./blobs/other"})
		case strings.HasSuffix(e.name, want.Layers[0].Digest.Encoded()):
			// A long PAX header before the biggest blob.
			e.format = tar.FormatPAX
			e.pax = map[string]string{"comment": strings.Repeat("x", 3000)}
			es = append(es, e)
		default:
			es = append(es, e)
		}
	}
	evil := tentry{name: "../blobs/sha256/" + want.Layers[2].Digest.Encoded(), body: []byte("evil")}
	abs := tentry{name: "/index.json", body: []byte("{}")}
	es = append(es, evil, abs)
	p := writeFile(t, filepath.Join(t.TempDir(), "bb.tar"), tarBytes(t, es))

	l, _ := openSrc(t, "oci-archive:"+p)
	im := mustResolve(t, l, Select{Ref: "1.35"})
	sameImage(t, im, want)
	readAll(t, l, im)
	if want := "./index.json"; !strings.Contains(l.indexPath, "index.json") {
		t.Errorf("indexPath %q does not name %s", l.indexPath, want)
	}
}

// TestArchiveLinksStayInside: symlinks and hard links that leave the
// archive, and absolute or ".." names, are never followed or mapped.
func TestArchiveLinksStayInside(t *testing.T) {
	content := []byte("layer content")
	d := digest.FromBytes(content)
	b := newLayout(t)
	b.add(b.image(img{}), "x")
	b.write()
	base := layoutEntries(t, b.dir, "")
	cases := map[string][]tentry{
		"symlink out":          {{name: "blobs/sha256/" + d.Encoded(), typ: tar.TypeSymlink, link: "../../../" + d.Encoded()}, {name: d.Encoded(), body: content}},
		"absolute symlink":     {{name: "blobs/sha256/" + d.Encoded(), typ: tar.TypeSymlink, link: "/" + d.Encoded()}, {name: d.Encoded(), body: content}},
		"hard link out":        {{name: "blobs/sha256/" + d.Encoded(), typ: tar.TypeLink, link: "../" + d.Encoded()}},
		"dotdot name":          {{name: "x/../blobs/sha256/" + d.Encoded(), body: content}},
		"absolute name":        {{name: "/blobs/sha256/" + d.Encoded(), body: content}},
		"symlink loop":         {{name: "blobs/sha256/" + d.Encoded(), typ: tar.TypeSymlink, link: "a"}, {name: "blobs/sha256/a", typ: tar.TypeSymlink, link: d.Encoded()}},
		"dir replaces file":    {{name: "blobs/sha256/" + d.Encoded(), body: content}, {name: "blobs/sha256/" + d.Encoded() + "/", typ: tar.TypeDir}},
		"symlink to directory": {{name: "blobs/sha256/" + d.Encoded(), typ: tar.TypeSymlink, link: "."}},
	}
	for name, extra := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(t.TempDir(), "a.tar"), tarBytes(t, append(append([]tentry{}, base...), extra...)))
			l, _ := openSrc(t, "oci-archive:"+p)
			_, err := l.OpenBlob(v1.Descriptor{Digest: d, Size: int64(len(content))})
			wantErr(t, err, ErrBlobMissing, p)
		})
	}
	// A duplicate regular file: the last one wins.
	p := writeFile(t, filepath.Join(t.TempDir(), "a.tar"), tarBytes(t, append(append([]tentry{}, base...),
		tentry{name: "blobs/sha256/" + d.Encoded(), body: []byte("first")},
		tentry{name: "./blobs/sha256/" + d.Encoded(), body: content})))
	l, _ := openSrc(t, "oci-archive:"+p)
	if got, err := l.ReadBlob(v1.Descriptor{Digest: d, Size: int64(len(content))}, 100); err != nil || !bytes.Equal(got, content) {
		t.Errorf("duplicate member: %q, %v", got, err)
	}
}

// TestDirTransportSkopeo: `skopeo copy oci:... dir:DIR` keeps the manifest
// byte for byte (same digest); `--format v2s2` converts it to Docker media
// types with the same gzip layer blobs and config.
func TestDirTransportSkopeo(t *testing.T) {
	want := dirImage(t, busyboxDir, "1.35")
	tmp := t.TempDir()

	d := filepath.Join(tmp, "bbdir")
	skopeoCopy(t, "oci:"+busyboxDir+":1.35", "dir:"+d)
	l, src := openSrc(t, "dir:"+d)
	if src != (Source{Transport: TransportDir, Path: d}) {
		t.Fatalf("ParseSource = %+v", src)
	}
	im := mustResolve(t, l, Select{})
	sameImage(t, im, want)
	if im.ManifestDescriptor.Digest != busyboxManifest {
		t.Errorf("manifest digest %s, want %s (skopeo copies it unchanged)", im.ManifestDescriptor.Digest, busyboxManifest)
	}
	readAll(t, l, im)
	if p, err := l.BlobPath(im.Layers[0].Digest); err != nil || p != filepath.Join(d, im.Layers[0].Digest.Encoded()) {
		t.Errorf("BlobPath = %q, %v", p, err)
	}
	if len(l.Refs()) != 0 {
		t.Errorf("Refs() = %v", l.Refs())
	}

	d2 := filepath.Join(tmp, "bbv2s2")
	skopeoCopy(t, "--format", "v2s2", "oci:"+busyboxDir+":1.35", "dir:"+d2)
	l2, _ := openSrc(t, "dir:"+d2)
	im2 := mustResolve(t, l2, Select{})
	if im2.ManifestDescriptor.MediaType != MediaTypeDockerManifest || im2.ConfigDescriptor.MediaType != MediaTypeDockerConfig {
		t.Errorf("media types %q, %q", im2.ManifestDescriptor.MediaType, im2.ConfigDescriptor.MediaType)
	}
	if im2.ManifestDescriptor.Digest == busyboxManifest {
		t.Errorf("v2s2 manifest has the OCI manifest's digest")
	}
	if im2.ConfigDescriptor.Digest != busyboxConfig || !reflect.DeepEqual(im2.DiffIDs, want.DiffIDs) {
		t.Errorf("config %s, diff_ids %v", im2.ConfigDescriptor.Digest, im2.DiffIDs)
	}
	for i, ly := range im2.Layers {
		if ly.MediaType != layerz.MediaTypeDockerLayerGzip || ly.Digest != want.Layers[i].Digest || ly.Size != want.Layers[i].Size {
			t.Errorf("layer %d: %+v, want the gzip blob %s", i, ly, want.Layers[i].Digest)
		}
	}
	readAll(t, l2, im2)
}

// TestDirTransportAllSkopeo: `skopeo copy --all` of a two-platform image to
// dir: stores the index as manifest.json and the instance manifests as
// <hex>.manifest.json; Resolve picks by platform.
func TestDirTransportAllSkopeo(t *testing.T) {
	tmp := t.TempDir()
	mk := func(body string) testimage.Image {
		return testimage.Image{Layers: []testimage.Layer{{Entries: []testimage.Entry{{Name: "a", Body: []byte(body)}}}}}
	}
	tl, err := testimage.Write(filepath.Join(tmp, "layout"), testimage.Ref{Name: "multi", Platforms: []testimage.PlatformImage{
		{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: mk("amd64")},
		{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Image: mk("arm64")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(tmp, "d")
	skopeoCopy(t, "--all", "oci:"+tl.Dir+":multi", "dir:"+d)
	l, _ := openSrc(t, "dir:"+d)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		im := mustResolve(t, l, Select{Platform: platPtr(p)})
		if w := tl.Images["multi@"+p]; im.ManifestDescriptor.Digest != w.ManifestDigest || !reflect.DeepEqual(im.DiffIDs, w.DiffIDs) {
			t.Errorf("%s: manifest %s, want %s", p, im.ManifestDescriptor.Digest, w.ManifestDigest)
		}
		readAll(t, l, im)
	}
}

// TestDockerArchiveSkopeo: `skopeo copy oci:testdata/busybox:1.35
// docker-archive:bb.tar:busybox:1.35` writes the legacy docker save format
// (uncompressed layers named <diffid>.tar, HEX/layer.tar symlinks to them,
// RepoTags ["docker.io/library/busybox:1.35"]). It must resolve by every
// spelling of the name, by @0 and by no ref, to a synthesized Docker
// manifest whose layers are the uncompressed tars (digest = DiffID).
func TestDockerArchiveSkopeo(t *testing.T) {
	want := dirImage(t, busyboxDir, "1.35")
	p := filepath.Join(t.TempDir(), "bb-docker.tar")
	skopeoCopy(t, "oci:"+busyboxDir+":1.35", "docker-archive:"+p+":busybox:1.35")

	l, src := openSrc(t, "docker-archive:"+p+":busybox:1.35")
	if src != (Source{Transport: TransportDockerArchive, Path: p, Ref: "busybox:1.35"}) {
		t.Fatalf("ParseSource = %+v", src)
	}
	if got := fmt.Sprint(l.Refs()); got != "[docker.io/library/busybox:1.35]" {
		t.Errorf("Refs() = %s", got)
	}
	var first *Image
	for _, ref := range []string{"busybox:1.35", "docker.io/library/busybox:1.35", "index.docker.io/library/busybox:1.35", "library/busybox:1.35", "", "@0"} {
		im := mustResolve(t, l, Select{Ref: ref})
		if im.RefName != "docker.io/library/busybox:1.35" {
			t.Errorf("ref %q: RefName %q", ref, im.RefName)
		}
		if first == nil {
			first = im
			continue
		}
		sameImage(t, im, first)
	}
	im := first
	if im.ManifestDescriptor.MediaType != MediaTypeDockerManifest {
		t.Errorf("manifest media type %q", im.ManifestDescriptor.MediaType)
	}
	if !reflect.DeepEqual(im.ConfigDescriptor, v1.Descriptor{MediaType: MediaTypeDockerConfig, Digest: busyboxConfig, Size: want.ConfigDescriptor.Size}) {
		t.Errorf("config %+v", im.ConfigDescriptor)
	}
	if !bytes.Equal(im.RawConfig, want.RawConfig) || !reflect.DeepEqual(im.DiffIDs, want.DiffIDs) {
		t.Errorf("config or diff_ids differ from the OCI layout's")
	}
	if !reflect.DeepEqual(descDigests(im.Layers), want.DiffIDs) {
		t.Errorf("layer digests %v, want the DiffIDs %v", descDigests(im.Layers), want.DiffIDs)
	}
	ociLayers := readAll(t, mustOpen(t, busyboxDir), want)
	for i, b := range readAll(t, l, im) {
		if im.Layers[i].MediaType != layerz.MediaTypeDockerLayer {
			t.Errorf("layer %d media type %q", i, im.Layers[i].MediaType)
		}
		if got := digest.FromBytes(b); got != want.DiffIDs[i] {
			t.Errorf("layer %d hashes to %s, want DiffID %s", i, got, want.DiffIDs[i])
		}
		tb, err := testimage.Decompress(ociLayers[i])
		if err != nil || !bytes.Equal(tb, b) {
			t.Errorf("layer %d differs from the OCI layout's layer, uncompressed (%v)", i, err)
		}
	}
	// The synthesized manifest is deterministic.
	l2, _ := openSrc(t, "docker-archive:"+p)
	if im2 := mustResolve(t, l2, Select{}); im2.ManifestDescriptor.Digest != im.ManifestDescriptor.Digest {
		t.Errorf("manifest digest changed between opens: %s, %s", im.ManifestDescriptor.Digest, im2.ManifestDescriptor.Digest)
	}
	_, err := l.Resolve(context.Background(), Select{Ref: "busybox:latest"})
	wantErr(t, err, ErrRefNotFound, `"docker.io/library/busybox:1.35"`)

	// Without a name skopeo writes "RepoTags": []: no refs, the only
	// image by default or as @0, the same synthesized manifest.
	pu := filepath.Join(filepath.Dir(p), "untagged.tar")
	skopeoCopy(t, "oci:"+busyboxDir+":1.35", "docker-archive:"+pu)
	lu, _ := openSrc(t, "docker-archive:"+pu)
	if len(lu.Refs()) != 0 {
		t.Errorf("untagged Refs() = %v", lu.Refs())
	}
	for _, ref := range []string{"", "@0"} {
		if imu := mustResolve(t, lu, Select{Ref: ref}); imu.ManifestDescriptor.Digest != im.ManifestDescriptor.Digest || imu.RefName != "" {
			t.Errorf("untagged %q: %s %q", ref, imu.ManifestDescriptor.Digest, imu.RefName)
		}
	}
	_, err = l.Resolve(context.Background(), Select{Ref: "@1"})
	wantErr(t, err, ErrRefNotFound, "@0")
}

func mustOpen(t *testing.T, dir string) *Layout {
	t.Helper()
	l, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDockerArchiveGoLegacy: a legacy archive made in Go (docker < 25
// layout: HEX.json, HEX/layer.tar), with gzip and zstd layer files next to
// plain ones, several images and tags, and a broken entry that only fails
// when selected.
func TestDockerArchiveGoLegacy(t *testing.T) {
	a := newLegacyImage(t, "a", 2, "busybox:1.35", "busybox:latest")
	b := newLegacyImage(t, "b", 3, "example.com:5000/team/app:v2")
	// Compress b's layers 1 (gzip) and 2 (zstd): their DiffIDs stay.
	gz, err := testimage.Compress(b.layers[1], testimage.GzipStdlib)
	if err != nil {
		t.Fatal(err)
	}
	zs, err := testimage.Compress(b.layers[2], testimage.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	b.layers[1], b.layers[2] = gz, zs
	broken := newLegacyImage(t, "c", 1, "broken:1")
	es := legacyEntries(t, a, b, broken)
	// Drop broken's layer file.
	for i, e := range es {
		if bytes.Equal(e.body, broken.layers[0]) {
			es = append(es[:i], es[i+1:]...)
			break
		}
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "save.tar"), tarBytes(t, es))
	l, _ := openSrc(t, "docker-archive:"+p)
	if got := fmt.Sprint(l.Refs()); got != "[busybox:1.35 busybox:latest example.com:5000/team/app:v2 broken:1]" {
		t.Errorf("Refs() = %s", got)
	}

	_, err = l.Resolve(context.Background(), Select{})
	wantErr(t, err, ErrAmbiguous, `"busybox:1.35" aka "busybox:latest"`, `"example.com:5000/team/app:v2"`, `"broken:1"`, "@2")

	for _, ref := range []string{"busybox", "docker.io/library/busybox:latest", "busybox:1.35", "@0"} {
		im := mustResolve(t, l, Select{Ref: ref})
		if !reflect.DeepEqual(descDigests(im.Layers), a.diffs) || im.ConfigDescriptor.Digest != digest.FromBytes(a.config) {
			t.Errorf("ref %q: layers %v", ref, descDigests(im.Layers))
		}
		readAll(t, l, im)
	}

	im := mustResolve(t, l, Select{Ref: "example.com:5000/team/app:v2"})
	wantTypes := []string{layerz.MediaTypeDockerLayer, layerz.MediaTypeDockerLayerGzip, v1.MediaTypeImageLayerZstd}
	for i, ly := range im.Layers {
		if ly.MediaType != wantTypes[i] || ly.Digest != digest.FromBytes(b.layers[i]) || ly.Size != int64(len(b.layers[i])) {
			t.Errorf("layer %d: %+v", i, ly)
		}
	}
	if !reflect.DeepEqual(im.DiffIDs, b.diffs) {
		t.Errorf("diff_ids %v", im.DiffIDs)
	}
	for i, blob := range readAll(t, l, im) {
		if tb, err := testimage.Decompress(blob); err != nil || digest.FromBytes(tb) != b.diffs[i] {
			t.Errorf("layer %d does not decompress to its DiffID (%v)", i, err)
		}
	}
	if mustResolve(t, l, Select{Ref: "@1"}).ManifestDescriptor.Digest != im.ManifestDescriptor.Digest {
		t.Errorf("@1 is not the second image")
	}

	_, err = l.Resolve(context.Background(), Select{Ref: "broken:1"})
	wantErr(t, err, ErrBlobMissing, "layer 0", "layer.tar", "manifest.json entry 2")
	_, err = l.Resolve(context.Background(), Select{Ref: "@3"})
	wantErr(t, err, ErrRefNotFound, "3 images")
}

// TestDockerArchiveGoLayerChecks: the DiffID that stands in for an
// uncompressed layer's digest is checked when the layer is read.
func TestDockerArchiveGoLayerChecks(t *testing.T) {
	a := newLegacyImage(t, "a", 1, "a:1")
	a.layers[0] = append([]byte{}, a.layers[0]...)
	a.layers[0][100] ^= 1 // not the tar the config describes
	p := writeFile(t, filepath.Join(t.TempDir(), "save.tar"), tarBytes(t, legacyEntries(t, a)))
	l, _ := openSrc(t, "docker-archive:"+p)
	im := mustResolve(t, l, Select{})
	rc, err := l.OpenBlob(im.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	wantErr(t, err, ErrDigestMismatch, "layer.tar", string(a.diffs[0]))

	// Fewer diff_ids than layers: the entry is malformed.
	c := newLegacyImage(t, "c", 2, "c:1")
	c.config = legacyConfig(t, c.diffs[:1])
	p = writeFile(t, filepath.Join(t.TempDir(), "save.tar"), tarBytes(t, legacyEntries(t, c)))
	l, _ = openSrc(t, "docker-archive:"+p)
	_, err = l.Resolve(context.Background(), Select{})
	wantErr(t, err, ErrMalformed, "rootfs.diff_ids")

	// Missing config.
	es := legacyEntries(t, newLegacyImage(t, "d", 1, "d:1"))
	p = writeFile(t, filepath.Join(t.TempDir(), "save.tar"), tarBytes(t, es[1:]))
	l, _ = openSrc(t, "docker-archive:"+p)
	_, err = l.Resolve(context.Background(), Select{Ref: "d:1"})
	wantErr(t, err, ErrBlobMissing, "config", ".json")
}

// TestDockerArchiveGoOCI: the docker 25+ format, an OCI layout plus a
// legacy manifest.json, resolves through index.json; refs match the ref
// name, io.containerd.image.name and the RepoTags (mapped by name or by
// config digest); @N follows manifest.json order.
func TestDockerArchiveGoOCI(t *testing.T) {
	dir := t.TempDir()
	mk := func(body string) *testimage.Image {
		return &testimage.Image{Layers: []testimage.Layer{
			{Entries: []testimage.Entry{{Name: "a", Body: []byte(body)}}, Compression: testimage.None},
			{Entries: []testimage.Entry{{Name: "b", Body: []byte(body)}}, Compression: testimage.None},
		}}
	}
	tl, err := testimage.Write(dir,
		testimage.Ref{Name: "1.35", Image: mk("bb"), Annotations: map[string]string{AnnotationContainerdImageName: "docker.io/library/busybox:1.35"}},
		testimage.Ref{Name: "", Image: mk("other")},
	)
	if err != nil {
		t.Fatal(err)
	}
	bb, other := tl.Images["1.35"], tl.Images[""]
	if bb == nil || other == nil {
		t.Fatalf("images: %v", tl.Images)
	}
	type mentry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	entry := func(w *testimage.Written, tags ...string) mentry {
		e := mentry{Config: "blobs/sha256/" + w.ConfigDigest.Encoded(), RepoTags: tags}
		for _, d := range w.LayerDigests {
			e.Layers = append(e.Layers, "blobs/sha256/"+d.Encoded())
		}
		return e
	}
	// manifest.json lists "other" first, so that @N and index order differ.
	mj, _ := json.Marshal([]mentry{entry(other, "other:2"), entry(bb, "busybox:1.35", "bb:alias")})
	es := append(layoutEntries(t, dir, ""), tentry{name: "manifest.json", body: mj})
	p := writeFile(t, filepath.Join(t.TempDir(), "docker25.tar"), tarBytes(t, es))

	l, _ := openSrc(t, "docker-archive:"+p)
	if got := fmt.Sprint(l.Refs()); got != "[1.35 docker.io/library/busybox:1.35 bb:alias other:2]" {
		t.Errorf("Refs() = %s", got)
	}
	cases := []struct {
		ref     string
		want    *testimage.Written
		refName string
	}{
		{"1.35", bb, "1.35"},
		{"busybox:1.35", bb, "docker.io/library/busybox:1.35"},
		{"docker.io/library/busybox:1.35", bb, "docker.io/library/busybox:1.35"},
		{"bb:alias", bb, "bb:alias"},
		{"docker.io/library/bb:alias", bb, "bb:alias"},
		{"@1", bb, "1.35"},
		{"other:2", other, "other:2"},
		{"@0", other, ""},
		{"@" + string(other.ManifestDigest), other, ""},
	}
	for _, tc := range cases {
		im := mustResolve(t, l, Select{Ref: tc.ref})
		if im.ManifestDescriptor.Digest != tc.want.ManifestDigest || im.RefName != tc.refName {
			t.Errorf("ref %q: manifest %s RefName %q, want %s %q", tc.ref, im.ManifestDescriptor.Digest, im.RefName, tc.want.ManifestDigest, tc.refName)
		}
		if im.ManifestDescriptor.MediaType != v1.MediaTypeImageManifest {
			t.Errorf("ref %q: resolved a %q, not the OCI manifest", tc.ref, im.ManifestDescriptor.MediaType)
		}
		readAll(t, l, im)
	}
	_, err = l.Resolve(context.Background(), Select{})
	wantErr(t, err, ErrAmbiguous, `"1.35" aka "docker.io/library/busybox:1.35" aka "bb:alias"`, `@0 "other:2"`)

	// The same tar as an oci-archive: the OCI layout, without the
	// manifest.json names.
	lo, _ := openSrc(t, "oci-archive:"+p)
	if im := mustResolve(t, lo, Select{Ref: "busybox:1.35"}); im.ManifestDescriptor.Digest != bb.ManifestDigest {
		t.Errorf("oci-archive by containerd name: %s", im.ManifestDescriptor.Digest)
	}
	_, err = lo.Resolve(context.Background(), Select{Ref: "other:2"})
	wantErr(t, err, ErrRefNotFound)
	_, err = lo.Resolve(context.Background(), Select{Ref: "@1"})
	wantErr(t, err, ErrInvalidDigest)
}

// TestDockerArchiveGGCR: go-containerregistry's tarball writer (a second,
// independent docker save implementation) writes compressed layer files
// ("<hex>.tar.gz") and "sha256:<hex>" config names; the three committed
// busybox layouts (gzip, zstd, plain) in one archive.
func TestDockerArchiveGGCR(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ggcr.tar")
	tags := writeGGCRTarball(t, p, map[string]string{
		"busybox:gzip":  busyboxDir,
		"busybox:zstd":  busyboxZstdDir,
		"busybox:plain": busyboxPlainDir,
	})
	l, _ := openSrc(t, "docker-archive:"+p)
	_, err := l.Resolve(context.Background(), Select{})
	wantErr(t, err, ErrAmbiguous, tags...)
	for tag, dir := range map[string]string{"busybox:gzip": busyboxDir, "busybox:zstd": busyboxZstdDir, "docker.io/library/busybox:plain": busyboxPlainDir} {
		want := dirImage(t, dir, "1.35")
		im := mustResolve(t, l, Select{Ref: tag})
		if !reflect.DeepEqual(descDigests(im.Layers), descDigests(want.Layers)) || !reflect.DeepEqual(im.DiffIDs, want.DiffIDs) {
			t.Errorf("%s: layers %v, want %v", tag, descDigests(im.Layers), descDigests(want.Layers))
		}
		for i, ly := range im.Layers {
			wmt := map[string]string{
				v1.MediaTypeImageLayerGzip: layerz.MediaTypeDockerLayerGzip,
				v1.MediaTypeImageLayerZstd: v1.MediaTypeImageLayerZstd,
				v1.MediaTypeImageLayer:     layerz.MediaTypeDockerLayer,
			}[want.Layers[i].MediaType]
			if ly.MediaType != wmt || ly.Size != want.Layers[i].Size {
				t.Errorf("%s layer %d: %+v", tag, i, ly)
			}
		}
		if im.ConfigDescriptor.Digest != want.ConfigDescriptor.Digest {
			t.Errorf("%s: config %s", tag, im.ConfigDescriptor.Digest)
		}
		readAll(t, l, im)
	}
}

// TestArchiveErrors: archives that are not usable, and what the errors say.
func TestArchiveErrors(t *testing.T) {
	tmp := t.TempDir()
	good := tarBytes(t, layoutEntries(t, busyboxDir, ""))
	legacy := tarBytes(t, legacyEntries(t, newLegacyImage(t, "a", 1, "a:1")))
	var gz bytes.Buffer
	gzb, err := testimage.Compress(good, testimage.GzipStdlib)
	if err != nil {
		t.Fatal(err)
	}
	gz.Write(gzb)
	noIndex := tarBytes(t, []tentry{{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {name: "blobs/", typ: tar.TypeDir}})
	bigManifest := tarBytes(t, []tentry{{name: "manifest.json", body: append([]byte("["), bytes.Repeat([]byte(" "), 2000)...)}})
	cases := []struct {
		name      string
		transport string
		data      []byte
		limits    Limits
		want      error
		msg       []string
	}{
		{"truncated in a blob", TransportOCIArchive, good[:len(good)/2], Limits{}, ErrNotLayout, []string{"truncated", "needs 1092118 bytes"}},
		// The last member (oci-layout) is a header block and a data block
		// before the two zero blocks; cut in the middle of its header.
		{"truncated in a header", TransportOCIArchive, good[:len(good)-1024-512-300], Limits{}, ErrNotLayout, []string{"not a valid tar"}},
		{"truncated docker-archive", TransportDockerArchive, legacy[:len(legacy)-1024-600], Limits{}, ErrNotLayout, nil},
		{"not a tar", TransportOCIArchive, bytes.Repeat([]byte("not a tar file\n"), 100), Limits{}, ErrNotLayout, []string{"not a valid tar"}},
		{"empty file", TransportOCIArchive, nil, Limits{}, ErrNotLayout, []string{"index.json", "oci-layout"}},
		{"gzip", TransportOCIArchive, gz.Bytes(), Limits{}, ErrNotLayout, []string{"gzip"}},
		{"gzip docker-archive", TransportDockerArchive, gz.Bytes(), Limits{}, ErrNotLayout, []string{"gzip"}},
		{"no index.json", TransportOCIArchive, noIndex, Limits{}, ErrNotLayout, []string{"no index.json member"}},
		{"docker save as oci-archive", TransportOCIArchive, legacy, Limits{}, ErrNotLayout, []string{"docker-archive:"}},
		{"docker-archive without manifest.json", TransportDockerArchive, noIndex, Limits{}, ErrNotLayout, []string{"manifest.json"}},
		{"manifest.json too big", TransportDockerArchive, bigManifest, Limits{MaxJSONBytes: 1000}, ErrLimit, []string{"manifest.json", "MaxJSONBytes 1000"}},
		{"manifest.json not an array", TransportDockerArchive, tarBytes(t, []tentry{{name: "manifest.json", body: []byte(`{}`)}}), Limits{}, ErrMalformed, []string{"manifest.json"}},
		{"manifest.json entry not an object", TransportDockerArchive, tarBytes(t, []tentry{{name: "manifest.json", body: []byte(`[1]`)}}), Limits{}, ErrMalformed, []string{"entry 0"}},
		{"index.json too big", TransportOCIArchive, good, Limits{MaxJSONBytes: 100}, ErrLimit, []string{"index.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(tmp, strings.ReplaceAll(tc.name, " ", "_")+".tar"), tc.data)
			l, err := OpenSource(Source{Transport: tc.transport, Path: p}, OpenOptions{Limits: tc.limits})
			if err == nil {
				l.Close()
			}
			wantErr(t, err, tc.want, append([]string{p}, tc.msg...)...)
		})
	}
	_, err = OpenSource(Source{Transport: TransportOCIArchive, Path: filepath.Join(tmp, "missing.tar")}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "missing.tar")
	_, err = OpenSource(Source{Transport: TransportOCIArchive, Path: tmp}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "not a regular file")
	_, err = OpenSource(Source{Transport: "docker", Path: "busybox"}, OpenOptions{})
	wantErr(t, err, ErrInvalidSource, `"docker"`)
	_, err = OpenSource(Source{Transport: TransportDir}, OpenOptions{})
	wantErr(t, err, ErrInvalidSource, "empty path")
	// A plain file given as an OCI directory gets a hint.
	_, err = OpenSource(Source{Path: writeFile(t, filepath.Join(tmp, "x.tar"), good)}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "oci-archive:")
}

// TestDirTransportErrors: dir: directories that are not usable.
func TestDirTransportErrors(t *testing.T) {
	tmp := t.TempDir()
	mkdir := func(name string, files map[string]string) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for n, c := range files {
			writeFile(t, filepath.Join(d, n), []byte(c))
		}
		return d
	}
	_, err := OpenSource(Source{Transport: TransportDir, Path: mkdir("empty", nil)}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "manifest.json")
	_, err = OpenSource(Source{Transport: TransportDir, Path: mkdir("oci", map[string]string{"oci-layout": "{}"})}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "use oci:")
	_, err = OpenSource(Source{Transport: TransportDir, Path: mkdir("version", map[string]string{"version": "something else", "manifest.json": "{}"})}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "Directory Transport Version")
	_, err = OpenSource(Source{Transport: TransportDir, Path: mkdir("bad", map[string]string{"manifest.json": "[]"})}, OpenOptions{})
	wantErr(t, err, ErrMalformed, "manifest.json")
	_, err = OpenSource(Source{Transport: TransportDir, Path: filepath.Join(tmp, "nope")}, OpenOptions{})
	wantErr(t, err, ErrNotLayout, "nope")

	// A schema 1 manifest opens but does not resolve.
	d := mkdir("v1", map[string]string{"version": "Directory Transport Version: 1.1\n",
		"manifest.json": `{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws","name":"x"}`})
	l, err := OpenSource(Source{Transport: TransportDir, Path: d}, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Resolve(context.Background(), Select{})
	wantErr(t, err, ErrUnsupportedMediaType, "manifest.json")

	// A missing layer blob.
	b := newLayout(t)
	m := b.image(img{})
	d = mkdir("nolayer", map[string]string{"version": "Directory Transport Version: 1.1\n"})
	mb, _ := os.ReadFile(b.path(m.Digest))
	writeFile(t, filepath.Join(d, "manifest.json"), mb)
	var man v1.Manifest
	json.Unmarshal(mb, &man)
	cb, _ := os.ReadFile(b.path(man.Config.Digest))
	writeFile(t, filepath.Join(d, man.Config.Digest.Encoded()), cb)
	l, err = OpenSource(Source{Transport: TransportDir, Path: d}, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	im := mustResolve(t, l, Select{})
	_, err = l.OpenBlob(im.Layers[0])
	wantErr(t, err, ErrBlobMissing, filepath.Join(d, im.Layers[0].Digest.Encoded()))
	if fmt.Sprintf("%x", sha256.Sum256(mb)) != im.ManifestDescriptor.Digest.Encoded() {
		t.Errorf("manifest digest %s", im.ManifestDescriptor.Digest)
	}
}
