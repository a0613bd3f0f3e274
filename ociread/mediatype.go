package ociread

import v1 "github.com/opencontainers/image-spec/specs-go/v1"

// AnnotationContainerdImageName is the annotation containerd, nerdctl and
// docker (25+) `save` put on index.json entries: the full image name, e.g.
// "docker.io/library/busybox:1.35". Select.Ref matches it (see Select).
const AnnotationContainerdImageName = "io.containerd.image.name"

// Docker image media types that ociclip accepts next to the OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeDockerLayer is an uncompressed Docker layer, as written by
	// containers/image (skopeo, podman) for uncompressed docker-format images.
	MediaTypeDockerLayer = "application/vnd.docker.image.rootfs.diff.tar"
	// MediaTypeDockerLayerZstd is a zstd layer in a Docker schema 2 manifest,
	// as containerd names it (images.MediaTypeDockerSchema2LayerZstd).
	MediaTypeDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// annotation buildx puts on attestation manifests in an image index.
const annotationDockerReferenceType = "vnd.docker.reference.type"

// IsLayerMediaType reports whether mt is a layer media type ociclip can read:
// OCI tar, tar+gzip and tar+zstd (also their non-distributable variants),
// and Docker rootfs.diff.tar.gzip, rootfs.diff.tar and (containerd's)
// rootfs.diff.tar.zstd. Docker foreign layers
// and anything else are not.
func IsLayerMediaType(mt string) bool {
	switch mt {
	case v1.MediaTypeImageLayer, v1.MediaTypeImageLayerGzip, v1.MediaTypeImageLayerZstd,
		v1.MediaTypeImageLayerNonDistributable, v1.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still found in the wild
		v1.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerLayerGzip, MediaTypeDockerLayer, MediaTypeDockerLayerZstd:
		return true
	}
	return false
}

func isManifestMediaType(mt string) bool {
	return mt == v1.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndexMediaType(mt string) bool {
	return mt == v1.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isConfigMediaType(mt string) bool {
	return mt == v1.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}
