// Package testimage writes OCI image layouts for tests, with precise control
// over every tar entry, the layer compression and the manifests, and provides
// Replay, an independent in-memory reference of the merged (overlay) file
// tree that tests compare ociclip's results against.
//
// Everything written is deterministic: fixed default times (DefaultTime), JSON
// from encoding/json of structs (map keys sorted), no randomness. Two Write
// calls with the same input produce the same digests.
//
// Typical use:
//
//	l, err := testimage.Write(t.TempDir(), testimage.Ref{Name: "1.0", Image: &testimage.Image{
//		Layers: []testimage.Layer{
//			{Entries: []testimage.Entry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/a", Body: []byte("a")}}},
//			{Entries: []testimage.Entry{{Name: "etc/.wh.a"}}, Compression: testimage.Zstd},
//		},
//	}})
//	want, err := testimage.Replay(l.Images["1.0"].LayerTars)
package testimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 2 media types, used when Image.DockerMediaTypes is set.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// Layer is one layer of an image.
type Layer struct {
	// Entries are the tar entries, in order. The tar stream ends with two
	// zero blocks (see TarBytes).
	Entries []Entry
	// Compression of the blob; "" means Gzip.
	Compression Compression
	// SplitAt are the member/frame/flush points for the multi variants,
	// as offsets into the uncompressed tar (see CompressSplit); nil means
	// DefaultSplits.
	SplitAt []int64
	// MediaType overrides the layer media type in the manifest.
	MediaType string
	// Annotations are set on the layer descriptor in the manifest.
	Annotations map[string]string
	// RawTar, when non-nil, is used verbatim as the uncompressed tar stream
	// instead of Entries (then compressed as Compression says).
	RawTar []byte
	// RawBlob, when non-nil, is used verbatim as the layer blob; Entries,
	// RawTar and Compression are then only used for the media type. Its
	// DiffID is the sha256 of Decompress(RawBlob), or of RawBlob itself if
	// that fails.
	RawBlob []byte
}

// ConfigOptions are the fields of the image config. Zero values get the
// defaults noted.
type ConfigOptions struct {
	Created      time.Time // default DefaultTime
	Architecture string    // default: the platform's, else runtime.GOARCH
	OS           string    // default: the platform's, else "linux"
	Variant      string    // default: the platform's
	Author       string
	User         string
	Env          []string
	Cmd          []string
	Entrypoint   []string
	WorkingDir   string
	Labels       map[string]string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	StopSignal   string
	// NoHistory omits the history (by default one entry per layer,
	// created_by "testimage layer N").
	NoHistory bool
}

// Image is one image: its layers, config and manifest options.
type Image struct {
	Layers []Layer
	Config ConfigOptions
	// DockerMediaTypes writes Docker schema 2 media types for the manifest,
	// config and layers (gzip, zstd and plain tar layers). Note: skopeo
	// 1.9's oci: transport ignores index.json descriptors with Docker
	// media types ("no descriptor found for reference").
	DockerMediaTypes bool
	// ManifestAnnotations are set on the manifest.
	ManifestAnnotations map[string]string
	// RawConfig, when non-nil, is used verbatim as the config blob.
	RawConfig []byte
	// EditConfig and EditManifest, when set, are called on the config and
	// the manifest just before they are marshalled: the place to write wrong
	// DiffIDs, wrong descriptor sizes or media types, extra fields, etc.
	EditConfig   func(*v1.Image)
	EditManifest func(*v1.Manifest)
}

// PlatformImage is one image of a nested image index.
type PlatformImage struct {
	Platform v1.Platform
	Image    Image
}

// Ref is one entry of index.json.
type Ref struct {
	// Name is written as the org.opencontainers.image.ref.name annotation;
	// "" writes no name annotation.
	Name string
	// Image is a single image manifest, used when Platforms is empty.
	Image *Image
	// Platforms, when set, makes the ref a nested image index with one
	// manifest per platform. The index is a Docker manifest list if every
	// image has DockerMediaTypes, else an OCI image index.
	Platforms []PlatformImage
	// Annotations are extra annotations of the index.json descriptor.
	Annotations map[string]string
}

// Layout describes a written layout.
type Layout struct {
	// Dir is the layout directory.
	Dir string
	// Index is index.json as written.
	Index v1.Index
	// Images are the written images by ref name; the images of a ref with
	// Platforms are keyed "name@os/arch" or "name@os/arch/variant".
	Images map[string]*Written
	// Nested are the descriptors of nested image indexes, by ref name.
	Nested map[string]v1.Descriptor
}

// Written describes one written image.
type Written struct {
	// ManifestDigest, ManifestBytes and Manifest are the manifest blob.
	ManifestDigest digest.Digest
	ManifestBytes  []byte
	Manifest       v1.Manifest
	// ManifestDescriptor is the descriptor pointing at the manifest (in
	// index.json or in the nested index).
	ManifestDescriptor v1.Descriptor
	// ConfigDigest, ConfigBytes and Config are the config blob (Config is
	// the zero value when RawConfig did not parse).
	ConfigDigest digest.Digest
	ConfigBytes  []byte
	Config       v1.Image
	// LayerDigests are the layer blob digests, DiffIDs the sha256 of the
	// uncompressed streams, LayerTars the uncompressed streams (nil for a
	// RawBlob that did not decompress), LayerBlobs the blobs.
	LayerDigests []digest.Digest
	DiffIDs      []digest.Digest
	LayerTars    [][]byte
	LayerBlobs   [][]byte
	// EntryPositions are the positions of each layer's entries in its
	// uncompressed tar (nil for RawTar and RawBlob layers).
	EntryPositions [][]EntryPos
}

// BlobPath returns the path of blob d in the layout at dir.
func BlobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// Write writes a complete OCI image layout into dir: oci-layout (version
// 1.0.0), blobs/sha256/* and index.json with one descriptor per ref, in
// order. dir is created if needed; an existing index.json is replaced.
func Write(dir string, refs ...Ref) (*Layout, error) {
	w := &writer{dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	l := &Layout{
		Dir:    dir,
		Index:  v1.Index{MediaType: v1.MediaTypeImageIndex},
		Images: map[string]*Written{},
		Nested: map[string]v1.Descriptor{},
	}
	l.Index.SchemaVersion = 2
	l.Index.Manifests = []v1.Descriptor{}
	for _, r := range refs {
		var desc v1.Descriptor
		if len(r.Platforms) > 0 {
			docker := true
			idx := v1.Index{}
			idx.SchemaVersion = 2
			for i := range r.Platforms {
				pi := &r.Platforms[i]
				docker = docker && pi.Image.DockerMediaTypes
				wi, err := w.image(&pi.Image, &pi.Platform)
				if err != nil {
					return nil, fmt.Errorf("testimage: ref %q platform %d: %w", r.Name, i, err)
				}
				p := pi.Platform
				wi.ManifestDescriptor.Platform = &p
				idx.Manifests = append(idx.Manifests, wi.ManifestDescriptor)
				l.Images[r.Name+"@"+platformString(p)] = wi
			}
			idx.MediaType = v1.MediaTypeImageIndex
			if docker {
				idx.MediaType = MediaTypeDockerManifestList
			}
			b, err := json.Marshal(idx)
			if err != nil {
				return nil, err
			}
			d, err := w.blob(b)
			if err != nil {
				return nil, err
			}
			desc = v1.Descriptor{MediaType: idx.MediaType, Digest: d, Size: int64(len(b))}
			l.Nested[r.Name] = desc
		} else {
			if r.Image == nil {
				return nil, fmt.Errorf("testimage: ref %q has neither Image nor Platforms", r.Name)
			}
			wi, err := w.image(r.Image, nil)
			if err != nil {
				return nil, fmt.Errorf("testimage: ref %q: %w", r.Name, err)
			}
			desc = wi.ManifestDescriptor
			l.Images[r.Name] = wi
		}
		ann := copyMap(r.Annotations)
		if r.Name != "" {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[v1.AnnotationRefName] = r.Name
		}
		desc.Annotations = ann
		l.Index.Manifests = append(l.Index.Manifests, desc)
		if wi, ok := l.Images[r.Name]; ok && len(r.Platforms) == 0 {
			wi.ManifestDescriptor = desc
		}
	}
	ib, err := json.Marshal(l.Index)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return nil, err
	}
	lb, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, v1.ImageLayoutFile), lb, 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

type writer struct{ dir string }

// blob writes b as a blob and returns its digest.
func (w *writer) blob(b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if err := os.WriteFile(BlobPath(w.dir, d), b, 0o644); err != nil {
		return "", err
	}
	return d, nil
}

func layerMediaType(c Compression, docker bool) string {
	switch c {
	case None:
		if docker {
			return MediaTypeDockerLayer
		}
		return v1.MediaTypeImageLayer
	case Zstd, ZstdMulti, ZstdSkippable:
		if docker {
			return MediaTypeDockerLayerZstd
		}
		return v1.MediaTypeImageLayerZstd
	}
	if docker {
		return MediaTypeDockerLayerGzip
	}
	return v1.MediaTypeImageLayerGzip
}

func (w *writer) image(img *Image, plat *v1.Platform) (*Written, error) {
	wi := &Written{}
	man := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Annotations: copyMap(img.ManifestAnnotations)}
	man.SchemaVersion = 2
	man.Layers = []v1.Descriptor{}
	configMT := v1.MediaTypeImageConfig
	if img.DockerMediaTypes {
		man.MediaType = MediaTypeDockerManifest
		configMT = MediaTypeDockerConfig
	}
	for i := range img.Layers {
		ly := &img.Layers[i]
		var tarb, blob []byte
		var pos []EntryPos
		var err error
		switch {
		case ly.RawBlob != nil:
			blob = ly.RawBlob
			if t, err := Decompress(blob); err == nil {
				tarb = t
			}
		default:
			if ly.RawTar != nil {
				tarb = ly.RawTar
			} else if tarb, pos, err = TarWithPositions(ly.Entries); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
			if blob, err = CompressSplit(tarb, ly.Compression, ly.SplitAt); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		}
		d, err := w.blob(blob)
		if err != nil {
			return nil, err
		}
		diff := digest.FromBytes(blob)
		if tarb != nil {
			diff = digest.FromBytes(tarb)
		}
		mt := ly.MediaType
		if mt == "" {
			mt = layerMediaType(ly.Compression, img.DockerMediaTypes)
		}
		man.Layers = append(man.Layers, v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(blob)), Annotations: copyMap(ly.Annotations)})
		wi.LayerDigests = append(wi.LayerDigests, d)
		wi.DiffIDs = append(wi.DiffIDs, diff)
		wi.LayerTars = append(wi.LayerTars, tarb)
		wi.LayerBlobs = append(wi.LayerBlobs, blob)
		wi.EntryPositions = append(wi.EntryPositions, pos)
	}

	cb := img.RawConfig
	if cb == nil {
		cfg := buildConfig(img, plat, wi.DiffIDs)
		if img.EditConfig != nil {
			img.EditConfig(&cfg)
		}
		var err error
		if cb, err = json.Marshal(cfg); err != nil {
			return nil, err
		}
	}
	_ = json.Unmarshal(cb, &wi.Config) // zero value if RawConfig is not a config
	cd, err := w.blob(cb)
	if err != nil {
		return nil, err
	}
	wi.ConfigDigest, wi.ConfigBytes = cd, cb
	man.Config = v1.Descriptor{MediaType: configMT, Digest: cd, Size: int64(len(cb))}
	if img.EditManifest != nil {
		img.EditManifest(&man)
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	md, err := w.blob(mb)
	if err != nil {
		return nil, err
	}
	wi.Manifest, wi.ManifestBytes, wi.ManifestDigest = man, mb, md
	wi.ManifestDescriptor = v1.Descriptor{MediaType: man.MediaType, Digest: md, Size: int64(len(mb))}
	if wi.ManifestDescriptor.MediaType == "" {
		wi.ManifestDescriptor.MediaType = v1.MediaTypeImageManifest
	}
	return wi, nil
}

func buildConfig(img *Image, plat *v1.Platform, diffIDs []digest.Digest) v1.Image {
	o := &img.Config
	created := o.Created
	if created.IsZero() {
		created = DefaultTime
	}
	arch, osName, variant := o.Architecture, o.OS, o.Variant
	if plat != nil {
		if arch == "" {
			arch = plat.Architecture
		}
		if osName == "" {
			osName = plat.OS
		}
		if variant == "" {
			variant = plat.Variant
		}
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	if osName == "" {
		osName = "linux"
	}
	cfg := v1.Image{
		Created: &created,
		Author:  o.Author,
		Platform: v1.Platform{
			Architecture: arch,
			OS:           osName,
			Variant:      variant,
		},
		Config: v1.ImageConfig{
			User:         o.User,
			ExposedPorts: o.ExposedPorts,
			Env:          o.Env,
			Entrypoint:   o.Entrypoint,
			Cmd:          o.Cmd,
			Volumes:      o.Volumes,
			WorkingDir:   o.WorkingDir,
			Labels:       o.Labels,
			StopSignal:   o.StopSignal,
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: append([]digest.Digest{}, diffIDs...)},
	}
	if plat != nil {
		cfg.OSVersion = plat.OSVersion
		cfg.OSFeatures = plat.OSFeatures
	}
	if !o.NoHistory {
		for i := range img.Layers {
			cfg.History = append(cfg.History, v1.History{Created: &created, CreatedBy: fmt.Sprintf("testimage layer %d", i)})
		}
	}
	return cfg
}

// CorruptBlob rewrites the blob d of the layout at dir in place with
// mutate(old bytes), keeping its file name, so that digest (and, if the
// length changes, size) checks fail.
func CorruptBlob(dir string, d digest.Digest, mutate func([]byte) []byte) error {
	p := BlobPath(dir, d)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p, mutate(b), 0o644)
}

// FlipByte returns a mutate function for CorruptBlob that inverts the byte at
// offset i (negative i counts from the end): same size, wrong digest.
func FlipByte(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		c := append([]byte(nil), b...)
		if len(c) == 0 {
			return c
		}
		if i < 0 {
			i += len(c)
		}
		if i >= 0 && i < len(c) {
			c[i] ^= 0xff
		}
		return c
	}
}

// ErrNotFound is returned by LayoutLayerTars for a ref that is not in the
// layout.
var ErrNotFound = errors.New("testimage: ref not found")

// LayoutLayerTars reads the image named ref (the ref.name annotation; "" means
// the only descriptor of index.json) from the layout at dir, with no
// verification beyond JSON parsing, and returns the uncompressed layer
// streams (see Decompress), for example to Replay a layout written by other
// tools. A nested index yields its first manifest for linux/runtime.GOARCH,
// or else its first manifest.
func LayoutLayerTars(dir, ref string) ([][]byte, error) {
	var idx v1.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, err
	}
	var desc *v1.Descriptor
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		if (ref == "" && len(idx.Manifests) == 1) || (ref != "" && d.Annotations[v1.AnnotationRefName] == ref) {
			desc = d
			break
		}
	}
	if desc == nil {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, ref, dir)
	}
	if desc.MediaType == v1.MediaTypeImageIndex || desc.MediaType == MediaTypeDockerManifestList {
		var nested v1.Index
		if err := readJSON(BlobPath(dir, desc.Digest), &nested); err != nil {
			return nil, err
		}
		if len(nested.Manifests) == 0 {
			return nil, fmt.Errorf("testimage: nested index %s is empty", desc.Digest)
		}
		desc = &nested.Manifests[0]
		for i := range nested.Manifests {
			p := nested.Manifests[i].Platform
			if p != nil && p.OS == "linux" && p.Architecture == runtime.GOARCH {
				desc = &nested.Manifests[i]
				break
			}
		}
	}
	var man v1.Manifest
	if err := readJSON(BlobPath(dir, desc.Digest), &man); err != nil {
		return nil, err
	}
	var tars [][]byte
	for _, l := range man.Layers {
		b, err := os.ReadFile(BlobPath(dir, l.Digest))
		if err != nil {
			return nil, err
		}
		t, err := Decompress(b)
		if err != nil {
			return nil, fmt.Errorf("testimage: layer %s: %w", l.Digest, err)
		}
		tars = append(tars, t)
	}
	return tars, nil
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("testimage: %s: %w", p, err)
	}
	return nil
}

// sha256Hex returns the lower-case hex sha256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// BusyboxStorageRef is the registry reference the tests record for the
// busybox layouts under testdata/ (what they were made from).
const BusyboxStorageRef = "docker.io/library/busybox:1.35"
