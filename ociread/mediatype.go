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
)

// annotation buildx puts on attestation manifests in an image index.
const annotationDockerReferenceType = "vnd.docker.reference.type"

func isManifestMediaType(mt string) bool {
	return mt == v1.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndexMediaType(mt string) bool {
	return mt == v1.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isConfigMediaType(mt string) bool {
	return mt == v1.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}
