package ociread

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testimage"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The committed layouts written by umoci and skopeo (see testdata/README.md).
const (
	busyboxDir      = "../testdata/busybox"
	busyboxZstdDir  = "../testdata/busybox-zstd"
	busyboxPlainDir = "../testdata/busybox-plain"
	busyboxManifest = "sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9"
	busyboxConfig   = "sha256:d504448b08aeb728713cbb1d071540b12696ca230c6f37ca6a1b3c1e60c7c728"
)

// requireTool returns the path of an external tool. A missing tool fails
// the test when CI=true and skips it otherwise.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required with CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// skopeoCopy runs `skopeo copy -q ARGS...`, offline between local
// transports.
func skopeoCopy(t *testing.T, args ...string) {
	t.Helper()
	p := requireTool(t, "skopeo")
	cmd := exec.Command(p, append([]string{"--insecure-policy", "copy", "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// openSrc parses and opens s, closing the layout at the end of the test.
func openSrc(t *testing.T, s string) (*Layout, Source) {
	t.Helper()
	src, err := ParseSource(s)
	if err != nil {
		t.Fatalf("ParseSource(%q): %v", s, err)
	}
	l, err := OpenSource(src, OpenOptions{})
	if err != nil {
		t.Fatalf("OpenSource(%+v): %v", src, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, src
}

func mustResolve(t *testing.T, l *Layout, sel Select) *Image {
	t.Helper()
	im, err := l.Resolve(context.Background(), sel)
	if err != nil {
		t.Fatalf("Resolve(%+v) on %s: %v", sel, l.Source(), err)
	}
	return im
}

// dirImage resolves ref in the committed layout dir.
func dirImage(t *testing.T, dir, ref string) *Image {
	t.Helper()
	l, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mustResolve(t, l, Select{Ref: ref})
}

// readAll reads the manifest, the config and every layer of im through the
// verifying reader and returns the layer blobs.
func readAll(t *testing.T, l *Layout, im *Image) [][]byte {
	t.Helper()
	mb, err := l.ReadBlob(im.ManifestDescriptor, 1<<20)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if digest.FromBytes(mb) != im.ManifestDescriptor.Digest {
		t.Fatalf("manifest bytes do not hash to %s", im.ManifestDescriptor.Digest)
	}
	if _, err := l.ReadBlob(im.ConfigDescriptor, 1<<20); err != nil {
		t.Fatalf("config: %v", err)
	}
	var out [][]byte
	for i, d := range im.Layers {
		rc, err := l.OpenBlob(d)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

// sameImage compares what ociclip uses of two resolutions of the same image.
func sameImage(t *testing.T, got, want *Image) {
	t.Helper()
	if got.ManifestDescriptor.Digest != want.ManifestDescriptor.Digest || got.ManifestDescriptor.Size != want.ManifestDescriptor.Size {
		t.Errorf("manifest %s (%d bytes), want %s (%d bytes)", got.ManifestDescriptor.Digest, got.ManifestDescriptor.Size,
			want.ManifestDescriptor.Digest, want.ManifestDescriptor.Size)
	}
	if got.ManifestDescriptor.MediaType != want.ManifestDescriptor.MediaType {
		t.Errorf("manifest media type %q, want %q", got.ManifestDescriptor.MediaType, want.ManifestDescriptor.MediaType)
	}
	if !reflect.DeepEqual(got.Layers, want.Layers) {
		t.Errorf("layers\n%+v\nwant\n%+v", got.Layers, want.Layers)
	}
	if !reflect.DeepEqual(got.ConfigDescriptor, want.ConfigDescriptor) {
		t.Errorf("config %+v, want %+v", got.ConfigDescriptor, want.ConfigDescriptor)
	}
	if !reflect.DeepEqual(got.DiffIDs, want.DiffIDs) {
		t.Errorf("diff_ids %v, want %v", got.DiffIDs, want.DiffIDs)
	}
	if !bytes.Equal(got.RawConfig, want.RawConfig) {
		t.Errorf("raw config differs")
	}
	if !reflect.DeepEqual(got.Manifest, want.Manifest) {
		t.Errorf("manifest\n%+v\nwant\n%+v", got.Manifest, want.Manifest)
	}
}

// tentry is one entry of a tar made by writeTar.
type tentry struct {
	name   string
	typ    byte // default tar.TypeReg
	body   []byte
	link   string
	format tar.Format
	pax    map[string]string
}

func tarBytes(t testing.TB, entries []tentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.link, Format: e.format, PAXRecords: e.pax}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// layoutEntries returns the files of the layout directory dir as tar
// entries named prefix+relative path, with directory entries, sorted.
func layoutEntries(t testing.TB, dir, prefix string) []tentry {
	t.Helper()
	var out []tentry
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "." {
				if prefix != "" {
					out = append(out, tentry{name: prefix, typ: tar.TypeDir})
				}
				return nil
			}
			out = append(out, tentry{name: prefix + rel + "/", typ: tar.TypeDir})
			return nil
		}
		b, err := os.ReadFile(p)
		out = append(out, tentry{name: prefix + rel, body: b})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// legacyImage is one image of a legacy docker save archive made by
// legacyEntries.
type legacyImage struct {
	tags   []string
	layers [][]byte // layer files as stored (uncompressed tars unless compressed)
	diffs  []digest.Digest
	config []byte
}

// newLegacyImage builds an image with n uncompressed layers whose content
// depends on seed.
func newLegacyImage(t testing.TB, seed string, n int, tags ...string) legacyImage {
	t.Helper()
	im := legacyImage{tags: tags}
	for i := 0; i < n; i++ {
		tb, err := testimage.TarBytes([]testimage.Entry{{Name: fmt.Sprintf("f%d", i), Body: []byte(seed + fmt.Sprint(i))}})
		if err != nil {
			t.Fatal(err)
		}
		im.layers = append(im.layers, tb)
		im.diffs = append(im.diffs, digest.FromBytes(tb))
	}
	im.config = legacyConfig(t, im.diffs)
	return im
}

func legacyConfig(t testing.TB, diffs []digest.Digest) []byte {
	t.Helper()
	if diffs == nil {
		diffs = []digest.Digest{}
	}
	b, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
		"config": map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffs},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// legacyEntries lays out images as docker (< 25) save does: HEX.json
// configs, HEX/layer.tar layers, manifest.json and repositories.
func legacyEntries(t testing.TB, images ...legacyImage) []tentry {
	t.Helper()
	var es []tentry
	type mentry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var man []mentry
	for _, im := range images {
		cfg := fmt.Sprintf("%x.json", sha256.Sum256(im.config))
		es = append(es, tentry{name: cfg, body: im.config})
		me := mentry{Config: cfg, RepoTags: im.tags, Layers: []string{}}
		for _, lb := range im.layers {
			dir := fmt.Sprintf("%x", sha256.Sum256(append([]byte("layer dir "), lb...)))
			es = append(es, tentry{name: dir + "/", typ: tar.TypeDir},
				tentry{name: dir + "/VERSION", body: []byte("1.0")},
				tentry{name: dir + "/json", body: []byte("{}")},
				tentry{name: dir + "/layer.tar", body: lb})
			me.Layers = append(me.Layers, dir+"/layer.tar")
		}
		man = append(man, me)
	}
	mb, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	return append(es, tentry{name: "manifest.json", body: mb}, tentry{name: "repositories", body: []byte("{}")})
}

func wantErr(t *testing.T, err, sentinel error, msg ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error = %v, want %v", err, sentinel)
	}
	for _, s := range msg {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func descDigests(ds []v1.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	return out
}
