package ociread

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/layerz"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// tlayout builds an OCI image layout in a temporary directory.
type tlayout struct {
	t         testing.TB
	dir       string
	manifests []v1.Descriptor
	// indexJSON, when set, is written verbatim as index.json.
	indexJSON []byte
}

func newLayout(t testing.TB) *tlayout {
	t.Helper()
	dir := t.TempDir()
	b := &tlayout{t: t, dir: dir}
	b.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return b
}

func (b *tlayout) file(rel string, data []byte) {
	b.t.Helper()
	p := filepath.Join(b.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// blob stores data under its sha256 and returns a descriptor (no media type).
func (b *tlayout) blob(data []byte) v1.Descriptor {
	b.t.Helper()
	d := digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
	b.file(filepath.Join("blobs", "sha256", d.Encoded()), data)
	return v1.Descriptor{Digest: d, Size: int64(len(data))}
}

func (b *tlayout) path(d digest.Digest) string {
	return filepath.Join(b.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// jsonBlob stores v as JSON and returns its descriptor with media type mt.
func (b *tlayout) jsonBlob(mt string, v any) v1.Descriptor {
	b.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	d := b.blob(data)
	d.MediaType = mt
	return d
}

// img describes a test image; zero values give a one-layer OCI image for
// linux/amd64.
type img struct {
	platform   string // os/arch[/variant], default linux/amd64
	layers     int    // number of layers (0 => 1; use noLayers for none)
	noLayers   bool
	diffDelta  int // diff_ids count = layers + diffDelta
	docker     bool
	manifestMT string // override manifest media type (written in the JSON); "-" => omit
	configMT   string // override config media type
	layerMT    string // override layer media type
	cmd        string
	seed       string // varies the layer content so that images differ
}

// image stores layers, config and manifest and returns the manifest
// descriptor (with media type, without platform).
func (b *tlayout) image(o img) v1.Descriptor {
	b.t.Helper()
	plat := o.platform
	if plat == "" {
		plat = "linux/amd64"
	}
	p, err := ParsePlatform(plat)
	if err != nil {
		b.t.Fatal(err)
	}
	n := o.layers
	if n == 0 && !o.noLayers {
		n = 1
	}
	manifestMT, configMT, layerMT := v1.MediaTypeImageManifest, v1.MediaTypeImageConfig, v1.MediaTypeImageLayerGzip
	if o.docker {
		manifestMT, configMT, layerMT = MediaTypeDockerManifest, MediaTypeDockerConfig, layerz.MediaTypeDockerLayerGzip
	}
	if o.manifestMT != "" {
		manifestMT = o.manifestMT
	}
	if o.configMT != "" {
		configMT = o.configMT
	}
	if o.layerMT != "" {
		layerMT = o.layerMT
	}
	var layers []v1.Descriptor
	var diffs []string
	for i := 0; i < n; i++ {
		l := b.blob([]byte(fmt.Sprintf("layer %d of %s %s", i, plat, o.seed)))
		l.MediaType = layerMT
		layers = append(layers, l)
		diffs = append(diffs, fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprint("diff", i)))))
	}
	for i := 0; i < o.diffDelta; i++ {
		diffs = append(diffs, fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprint("extra", i)))))
	}
	if o.diffDelta < 0 {
		diffs = diffs[:max(0, len(diffs)+o.diffDelta)]
	}
	if diffs == nil {
		diffs = []string{}
	}
	cmd := o.cmd
	if cmd == "" {
		cmd = "/bin/sh"
	}
	cfg := map[string]any{
		"created":      "2024-01-02T03:04:05Z",
		"architecture": p.Architecture,
		"os":           p.OS,
		"config":       map[string]any{"Cmd": []string{cmd}, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffs},
	}
	if p.Variant != "" {
		cfg["variant"] = p.Variant
	}
	if o.docker {
		cfg["docker_version"] = "24.0.7"
	}
	config := b.jsonBlob(configMT, cfg)
	m := map[string]any{"schemaVersion": 2, "config": config, "layers": layers}
	if manifestMT != "-" {
		m["mediaType"] = manifestMT
	} else {
		manifestMT = ""
	}
	return b.jsonBlob(manifestMT, m)
}

// index stores an image index (OCI, or a Docker manifest list when mt says
// so) over children and returns its descriptor.
func (b *tlayout) index(mt string, children ...v1.Descriptor) v1.Descriptor {
	b.t.Helper()
	if children == nil {
		children = []v1.Descriptor{}
	}
	return b.jsonBlob(mt, map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": children})
}

// add appends d to index.json, with ref as its ref name if not empty.
func (b *tlayout) add(d v1.Descriptor, ref string) {
	if ref != "" {
		d.Annotations = map[string]string{v1.AnnotationRefName: ref}
	}
	b.manifests = append(b.manifests, d)
}

// write writes index.json and returns the layout directory.
func (b *tlayout) write() string {
	b.t.Helper()
	data := b.indexJSON
	if data == nil {
		ms := b.manifests
		if ms == nil {
			ms = []v1.Descriptor{}
		}
		var err error
		data, err = json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: ms})
		if err != nil {
			b.t.Fatal(err)
		}
	}
	b.file("index.json", data)
	return b.dir
}

func (b *tlayout) open(opts OpenOptions) *Layout {
	b.t.Helper()
	b.write()
	l, err := Open(b.dir, opts)
	if err != nil {
		b.t.Fatalf("Open: %v", err)
	}
	return l
}

// plat returns d with the platform s ("os/arch[/variant]").
func plat(d v1.Descriptor, s string) v1.Descriptor {
	parts := strings.Split(s, "/")
	p := &v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	d.Platform = p
	return d
}

func platPtr(s string) *v1.Platform {
	p, err := ParsePlatform(s)
	if err != nil {
		panic(err)
	}
	return &p
}
