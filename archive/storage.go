package archive

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/tarindex"
)

// ErrStorageRef: the storage image reference does not parse.
var ErrStorageRef = errors.New("invalid storage image reference")

// StorageRef is where a mount fetches layer bytes from: clip joins it as
// RegistryURL/Repository:Reference.
type StorageRef struct {
	RegistryURL string
	Repository  string
	Reference   string
}

// ParseStorageRef splits an image reference exactly as clip does (with
// go-containerregistry's name package, which clip itself uses): "docker.io"
// becomes "index.docker.io", single-name repositories get "library/", a
// missing tag becomes "latest" (reported in the returned warning). clip
// a2a14fb cannot mount by digest, so when a reference has both a tag and a
// digest the tag is stored; a digest-only reference is stored as given and
// reported in the returned warning.
func ParseStorageRef(ref string) (StorageRef, string, error) {
	if ref == "" {
		return StorageRef{}, "", nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return StorageRef{}, "", fmt.Errorf("%w %q: %v", ErrStorageRef, ref, err)
	}
	s := StorageRef{
		RegistryURL: r.Context().RegistryStr(),
		Repository:  r.Context().RepositoryStr(),
		Reference:   r.Identifier(),
	}
	if _, isDigest := r.(name.Digest); isDigest {
		// "repo:tag@sha256:..." parses as a digest reference; keep the tag.
		if at := strings.LastIndex(ref, "@"); at > 0 {
			if t, err := name.NewTag(ref[:at]); err == nil && strings.Contains(ref[strings.LastIndex(ref[:at], "/")+1:at], ":") {
				s.Reference = t.TagStr()
				return s, "", nil
			}
		}
		return s, fmt.Sprintf("storage reference %q names a digest: clip a2a14fb cannot mount digest references; give a tag", ref), nil
	}
	if name := ref[strings.LastIndex(ref, "/")+1:]; !strings.Contains(name, ":") {
		return s, fmt.Sprintf("storage reference %q names no tag: a mount fetches :%s", ref, s.Reference), nil
	}
	return s, "", nil
}

// ImageInfo is what the storage info records about the image.
type ImageInfo struct {
	Name           string // image reference recorded as ImageMetadata.Name
	ManifestDigest string
	Config         v1.Image
	DockerVersion  string // config "docker_version", which v1.Image lacks
	Layers         []v1.Descriptor
}

// BuildStorageInfo fills clip's OCIStorageInfo from the image and the
// per-layer index results (one per manifest layer, in order).
func BuildStorageInfo(ref StorageRef, img ImageInfo, results []*tarindex.Result) (*common.OCIStorageInfo, error) {
	if len(results) != len(img.Layers) {
		return nil, fmt.Errorf("%d layer results for %d layers", len(results), len(img.Layers))
	}
	info := &common.OCIStorageInfo{
		RegistryURL:             ref.RegistryURL,
		Repository:              ref.Repository,
		Reference:               ref.Reference,
		Layers:                  make([]string, len(img.Layers)),
		GzipIdxByLayer:          map[string]*common.GzipIndex{},
		ZstdIdxByLayer:          map[string]*common.ZstdIndex{},
		DecompressedHashByLayer: map[string]string{},
	}
	md := &common.ImageMetadata{
		Name:          img.Name,
		Digest:        img.ManifestDigest,
		DockerVersion: img.DockerVersion,
		Architecture:  img.Config.Architecture,
		Os:            img.Config.OS,
		Variant:       img.Config.Variant,
		Author:        img.Config.Author,
		Labels:        nonNilMap(img.Config.Config.Labels),
		Env:           img.Config.Config.Env,
		Cmd:           img.Config.Config.Cmd,
		Entrypoint:    img.Config.Config.Entrypoint,
		User:          img.Config.Config.User,
		WorkingDir:    img.Config.Config.WorkingDir,
		ExposedPorts:  nonNilSet(img.Config.Config.ExposedPorts),
		Volumes:       nonNilSet(img.Config.Config.Volumes),
		StopSignal:    img.Config.Config.StopSignal,
		Layers:        make([]string, len(img.Layers)),
		LayersData:    make([]common.LayerMetadata, len(img.Layers)),
	}
	if img.Config.Created != nil {
		md.Created = *img.Config.Created
	}
	if md.Env == nil {
		md.Env = []string{}
	}
	for i, l := range img.Layers {
		d := l.Digest.String()
		info.Layers[i] = d
		md.Layers[i] = d
		md.LayersData[i] = common.LayerMetadata{MIMEType: l.MediaType, Digest: d, Size: l.Size, Annotations: l.Annotations}
		r := results[i]
		info.DecompressedHashByLayer[d] = r.DiffID.Encoded()
		switch r.Compression {
		case layerz.Gzip:
			info.GzipIdxByLayer[d] = &common.GzipIndex{LayerDigest: d, Checkpoints: clipCheckpoints(r.GzipCheckpoints)}
		case layerz.Zstd:
			info.ZstdIdxByLayer[d] = &common.ZstdIndex{LayerDigest: d, Frames: clipFrames(r.ZstdFrames)}
		}
	}
	info.ImageMetadata = md
	return info, nil
}

// BuildExtension collects the resumable checkpoints of every layer.
func BuildExtension(layers []v1.Descriptor, results []*tarindex.Result) *Extension {
	ext := &Extension{}
	seen := map[string]bool{}
	for i, l := range layers {
		d := l.Digest.String()
		if seen[d] {
			continue
		}
		seen[d] = true
		r := results[i]
		le := LayerExtension{
			Digest:      d,
			DiffID:      r.DiffID.String(),
			Compression: r.Compression.String(),
			Size:        r.CompressedSize,
			USize:       r.UncompressedSize,
			ChunkSize:   r.ChunkSize,
			ChunkCRCs:   r.ChunkCRCs,
		}
		if len(r.ResumePoints) > 0 {
			le.Points = r.ResumePoints
		}
		ext.Layers = append(ext.Layers, le)
	}
	return ext
}

// clipCheckpoints converts tarindex's checkpoints to clip's type: the one
// place where they become clip's.
func clipCheckpoints(cps []tarindex.Checkpoint) []common.GzipCheckpoint {
	if cps == nil {
		return nil
	}
	out := make([]common.GzipCheckpoint, len(cps))
	for i, c := range cps {
		out[i] = common.GzipCheckpoint{COff: c.COff, UOff: c.UOff}
	}
	return out
}

// clipFrames converts zstd frames to clip's type (and ClipFrames back).
func clipFrames(fs []layerz.ZstdFrame) []common.ZstdFrame {
	if fs == nil {
		return nil
	}
	out := make([]common.ZstdFrame, len(fs))
	for i, f := range fs {
		out[i] = common.ZstdFrame{COff: f.COff, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen}
	}
	return out
}

// LayerFrames returns the zstd frames clip's storage info records for a
// layer, sorted by uncompressed offset, in layerz's type.
func LayerFrames(info *common.OCIStorageInfo, layerDigest string) []layerz.ZstdFrame {
	z := info.ZstdIdxByLayer[layerDigest]
	if z == nil {
		return nil
	}
	out := make([]layerz.ZstdFrame, len(z.Frames))
	for i, f := range z.Frames {
		out[i] = layerz.ZstdFrame{COff: f.COff, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UOff < out[j].UOff })
	return out
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSet(m map[string]struct{}) map[string]struct{} {
	if m == nil {
		return map[string]struct{}{}
	}
	return m
}
