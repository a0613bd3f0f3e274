package tarindex

import (
	"bytes"
	"fmt"
	"strings"
)

// Layer media types ociclip can index.
const (
	MediaTypeOCILayer                = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip            = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd            = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeOCINondistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeOCINondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeOCINondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
	MediaTypeDockerLayer             = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip         = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayerGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerZstd         = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// CompressionForMediaType returns the compression a layer media type
// declares, or an error wrapping ErrUnknownMediaType.
func CompressionForMediaType(mt string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case MediaTypeOCILayer, MediaTypeOCINondistributable, MediaTypeDockerLayer:
		return CompressionNone, nil
	case MediaTypeOCILayerGzip, MediaTypeOCINondistributableGzip, MediaTypeDockerLayerGzip, MediaTypeDockerForeignLayerGzip:
		return CompressionGzip, nil
	case MediaTypeOCILayerZstd, MediaTypeOCINondistributableZstd, MediaTypeDockerLayerZstd:
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownMediaType, mt)
}

const (
	gzipMagic = "\x1f\x8b"
	zstdMagic = "\x28\xb5\x2f\xfd"
)

// sniffLen is how many leading bytes Sniff wants to see to recognise a tar
// ("ustar" at offset 257).
const sniffLen = 262

// Sniff detects the compression of a blob from its first bytes (up to 262 of
// them): gzip (1f 8b), zstd (a zstd frame 28 b5 2f fd or a skippable frame
// 5? 2a 4d 18), otherwise an uncompressed tar. ok is false when magic is too
// short to tell (it is empty, or a prefix of a gzip or zstd magic).
func Sniff(magic []byte) (c Compression, ok bool) {
	switch {
	case len(magic) == 0:
		return CompressionNone, false
	case bytes.HasPrefix(magic, []byte(gzipMagic)):
		return CompressionGzip, true
	case bytes.HasPrefix(magic, []byte(zstdMagic)), isSkippableMagic(magic):
		return CompressionZstd, true
	case len(magic) >= 262 && string(magic[257:262]) == "ustar":
		return CompressionNone, true
	case len(magic) < 4 && (strings.HasPrefix(gzipMagic, string(magic)) || strings.HasPrefix(zstdMagic, string(magic)) || skippablePrefix(magic)):
		return CompressionNone, false
	}
	return CompressionNone, true
}

// skippablePrefix reports whether b (shorter than 4 bytes) could begin a
// zstd skippable frame magic.
func skippablePrefix(b []byte) bool {
	want := [4]byte{0x50, 0x2a, 0x4d, 0x18}
	for i, c := range b {
		if i == 0 && c&0xf0 != 0x50 || i > 0 && c != want[i] {
			return false
		}
	}
	return true
}

func isSkippableMagic(b []byte) bool {
	return len(b) >= 4 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}
