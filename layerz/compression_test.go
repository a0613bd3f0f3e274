package layerz

import (
	"errors"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestForMediaType(t *testing.T) {
	for mt, want := range map[string]Compression{
		v1.MediaTypeImageLayer:                                         None,
		v1.MediaTypeImageLayerGzip:                                     Gzip,
		v1.MediaTypeImageLayerZstd:                                     Zstd,
		"application/vnd.oci.image.layer.nondistributable.v1.tar":      None,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": Gzip,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": Zstd,
		"application/vnd.docker.image.rootfs.diff.tar":                 None,
		"application/vnd.docker.image.rootfs.diff.tar.gzip":            Gzip,
		"application/vnd.docker.image.rootfs.diff.tar.zstd":            Zstd,
		// The decision of the one table: foreign layers are read like
		// any other when the layout holds their blob.
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": Gzip,
		// Media types are case-insensitive (RFC 6838).
		" Application/VND.OCI.Image.Layer.v1.tar+GZIP ": Gzip,
	} {
		got, err := ForMediaType(mt)
		if err != nil || got != want {
			t.Errorf("ForMediaType(%q) = %v, %v; want %v", mt, got, err, want)
		}
		if !IsLayerMediaType(mt) {
			t.Errorf("IsLayerMediaType(%q) = false", mt)
		}
	}
	for _, mt := range []string{"", v1.MediaTypeImageConfig, v1.MediaTypeImageManifest, "application/vnd.in-toto+json",
		"application/vnd.oci.image.layer.v1.tar+lz4"} {
		if _, err := ForMediaType(mt); !errors.Is(err, ErrUnknownMediaType) {
			t.Errorf("ForMediaType(%q): err = %v, want ErrUnknownMediaType", mt, err)
		}
		if IsLayerMediaType(mt) {
			t.Errorf("IsLayerMediaType(%q) = true", mt)
		}
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		if got, ok := ParseCompression(c.String()); !ok || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c, got, ok)
		}
	}
	if _, ok := ParseCompression("lz4"); ok {
		t.Error("ParseCompression(lz4) ok")
	}
}
