package layerz

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is the compression of a layer blob.
type Compression uint8

const (
	// None is an uncompressed tar stream.
	None Compression = iota
	// Gzip is a gzip stream (one or more members).
	Gzip
	// Zstd is a zstd stream (one or more frames).
	Zstd
)

// String returns "none", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}

// ParseCompression is the inverse of Compression.String.
func ParseCompression(s string) (Compression, bool) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		if c.String() == s {
			return c, true
		}
	}
	return None, false
}

// Layer media types ociclip reads: image-spec's and go-containerregistry's
// (Docker's) constants under one set of names.
const (
	MediaTypeOCILayer                = v1.MediaTypeImageLayer
	MediaTypeOCILayerGzip            = v1.MediaTypeImageLayerGzip
	MediaTypeOCILayerZstd            = v1.MediaTypeImageLayerZstd
	MediaTypeOCINondistributable     = v1.MediaTypeImageLayerNonDistributable     //nolint:staticcheck // deprecated, still found in the wild
	MediaTypeOCINondistributableGzip = v1.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck
	MediaTypeOCINondistributableZstd = v1.MediaTypeImageLayerNonDistributableZstd //nolint:staticcheck
	MediaTypeDockerLayer             = string(types.DockerUncompressedLayer)
	MediaTypeDockerLayerGzip         = string(types.DockerLayer)
	MediaTypeDockerForeignLayerGzip  = string(types.DockerForeignLayer)
	// MediaTypeDockerLayerZstd is a zstd layer in a Docker schema 2
	// manifest, as containerd names it
	// (images.MediaTypeDockerSchema2LayerZstd); neither image-spec nor
	// go-containerregistry has a constant for it.
	MediaTypeDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// layerMediaTypes is the one table of layer media types ociclip reads, with
// the compression each declares.
//
// Non-distributable ("foreign") layers are accepted, OCI's and Docker's
// alike: the restriction is about where the blob may be pushed, not about
// its format, and a layout that holds the blob can be indexed like any
// other (a layout without it fails with ociread.ErrBlobMissing). A mount
// then needs a registry that serves the blob.
var layerMediaTypes = map[string]Compression{
	MediaTypeOCILayer:                None,
	MediaTypeOCILayerGzip:            Gzip,
	MediaTypeOCILayerZstd:            Zstd,
	MediaTypeOCINondistributable:     None,
	MediaTypeOCINondistributableGzip: Gzip,
	MediaTypeOCINondistributableZstd: Zstd,
	MediaTypeDockerLayer:             None,
	MediaTypeDockerLayerGzip:         Gzip,
	MediaTypeDockerForeignLayerGzip:  Gzip,
	MediaTypeDockerLayerZstd:         Zstd,
}

// ForMediaType returns the compression a layer media type declares, or an
// error wrapping ErrUnknownMediaType. Media types are matched without
// regard to case or surrounding spaces (RFC 6838: they are
// case-insensitive).
func ForMediaType(mt string) (Compression, error) {
	if c, ok := layerMediaTypes[strings.ToLower(strings.TrimSpace(mt))]; ok {
		return c, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownMediaType, mt)
}

// IsLayerMediaType reports whether mt is a layer media type ociclip reads
// (see ForMediaType).
func IsLayerMediaType(mt string) bool {
	_, err := ForMediaType(mt)
	return err == nil
}

const (
	gzipMagic = "\x1f\x8b"
	zstdMagic = "\x28\xb5\x2f\xfd"
)

// SniffLen is how many leading bytes Sniff wants to see to recognise a tar
// ("ustar" at offset 257).
const SniffLen = 262

// Sniff detects the compression of a blob from its first bytes (up to
// SniffLen of them): gzip (1f 8b), zstd (a zstd frame 28 b5 2f fd or a
// skippable frame 5? 2a 4d 18), otherwise an uncompressed tar. ok is false
// when magic is too short to tell (it is empty, or a prefix of a gzip or
// zstd magic).
func Sniff(magic []byte) (c Compression, ok bool) {
	switch {
	case len(magic) == 0:
		return None, false
	case bytes.HasPrefix(magic, []byte(gzipMagic)):
		return Gzip, true
	case bytes.HasPrefix(magic, []byte(zstdMagic)), isSkippableMagic(magic):
		return Zstd, true
	case len(magic) >= SniffLen && string(magic[257:262]) == "ustar":
		return None, true
	case len(magic) < 4 && (strings.HasPrefix(gzipMagic, string(magic)) || strings.HasPrefix(zstdMagic, string(magic)) || skippablePrefix(magic)):
		return None, false
	}
	return None, true
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
