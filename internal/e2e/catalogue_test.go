package e2e_test

// The bad-input catalogue (issue 6): concrete broken or hostile layouts,
// each built in a temporary directory, run through CreateFromOCILayout with
// an output path, each with the sentinel error it must produce (errors.Is)
// and, for every row, a check that the output path is left as it was (absent,
// or a pre-existing file unchanged), that no temporary file is left next
// to it and that nothing in the layout changed. Limits are checked end to
// end with one row per limit; the error must name the limit.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/limits"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// catRow is one entry of the catalogue.
type catRow struct {
	name string
	// build writes the layout into dir and returns the options (LayoutPath,
	// LayoutRef, ...). OutputPath is set by the harness unless build sets it.
	build func(t *testing.T, dir string) ociclip.Options
	want  error  // the sentinel; nil: the run must succeed
	msg   string // a substring the error message must hold (limit names)
	// check inspects a successful run's archive.
	check func(t *testing.T, res *ociclip.Result, out string)
	// ctx, when set, gives the run's context (and may set callbacks in o).
	ctx func(o *ociclip.Options) context.Context
}

// Layers used by many rows.
func baseEntries() []testimage.Entry {
	return []testimage.Entry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/hostname", Body: []byte("catalogue\n")},
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/sh", Body: bytes.Repeat([]byte("#!shell\n"), 300), Mode: 0o755},
	}
}

// writeImage writes a layout with one image under the ref "t" and returns
// it with options selecting it.
func writeImage(t *testing.T, dir string, img testimage.Image) (*testimage.Layout, ociclip.Options) {
	t.Helper()
	l, err := testimage.Write(dir, testimage.Ref{Name: "t", Image: &img})
	if err != nil {
		t.Fatal(err)
	}
	return l, ociclip.Options{LayoutPath: dir, LayoutRef: "t", StorageImageRef: "registry.example/catalogue:1"}
}

// layers returns an image of the given layers.
func imageOf(ls ...testimage.Layer) testimage.Image { return testimage.Image{Layers: ls} }

// gzipLayer is a gzip layer of entries.
func gzipLayer(es ...testimage.Entry) testimage.Layer { return testimage.Layer{Entries: es} }

// rawLayer is a layer whose blob is b, described with the media type of c.
func rawLayer(b []byte, c testimage.Compression) testimage.Layer {
	return testimage.Layer{RawBlob: b, Compression: c}
}

func mustTar(t *testing.T, es ...testimage.Entry) []byte {
	t.Helper()
	b, err := testimage.TarBytes(es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCompress(t *testing.T, u []byte, c testimage.Compression) []byte {
	t.Helper()
	b, err := testimage.Compress(u, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ustarHeader builds a 512-byte USTAR header block by hand, with the size
// field as given (12 bytes, possibly invalid or base-256) and a correct
// checksum, for headers archive/tar's Writer refuses to write.
func ustarHeader(name string, typ byte, size []byte) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], size)
	copy(h[136:148], "14544516725\x00")
	h[156] = typ
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// octalSize is a valid octal size field.
func octalSize(n int64) []byte { return []byte(fmt.Sprintf("%011o\x00", n)) }

// base256Size is a size field in GNU's base-256 encoding.
func base256Size(n int64) []byte {
	b := make([]byte, 12)
	b[0] = 0x80
	binary.BigEndian.PutUint64(b[4:], uint64(n))
	return b
}

// paxFile is a PAX extended header with the records kv (key, value, ...)
// followed by a USTAR header for a regular file name holding data.
func paxFile(name string, data []byte, kv ...string) []byte {
	var recs []byte
	for i := 0; i+1 < len(kv); i += 2 {
		s := " " + kv[i] + "=" + kv[i+1] + "\n" // "LEN key=value\n", LEN counting itself
		l := len(s) + len(fmt.Sprint(len(s)))
		if len(fmt.Sprint(l)) != len(fmt.Sprint(len(s))) {
			l++
		}
		recs = append(recs, fmt.Sprint(l)+s...)
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	out := ustarHeader("PaxHeaders/x", tar.TypeXHeader, octalSize(int64(len(recs))))
	out = append(out, pad(recs)...)
	out = append(out, ustarHeader(name, tar.TypeReg, octalSize(int64(len(data))))...)
	return append(out, pad(data)...)
}

// nestIndex wraps the descriptor d into n more image indexes (each a blob
// of the layout) and returns the outermost descriptor.
func nestIndex(t *testing.T, dir string, d v1.Descriptor, n int) v1.Descriptor {
	t.Helper()
	for i := 0; i < n; i++ {
		ix := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{d}}
		ix.SchemaVersion = 2
		b, err := json.Marshal(ix)
		if err != nil {
			t.Fatal(err)
		}
		dg := digest.FromBytes(b)
		if err := os.WriteFile(testimage.BlobPath(dir, dg), b, 0o644); err != nil {
			t.Fatal(err)
		}
		d = v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: dg, Size: int64(len(b))}
	}
	return d
}

// writeIndexJSON replaces index.json with one that lists descs.
func writeIndexJSON(t *testing.T, dir string, descs ...v1.Descriptor) {
	t.Helper()
	ix := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	ix.SchemaVersion = 2
	b, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// twoPlatforms writes a ref "t" that is a nested index of linux/amd64 and
// linux/arm64 images.
func twoPlatforms(t *testing.T, dir string) (*testimage.Layout, ociclip.Options) {
	t.Helper()
	l, err := testimage.Write(dir, testimage.Ref{Name: "t", Platforms: []testimage.PlatformImage{
		{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Image: imageOf(gzipLayer(baseEntries()...))},
		{Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, Image: imageOf(gzipLayer(baseEntries()...))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l, ociclip.Options{LayoutPath: dir, LayoutRef: "t"}
}

func catalogue() []catRow {
	lim := func(o ociclip.Options, l ociclip.Limits) ociclip.Options { o.Limits = l; return o }
	return []catRow{
		// --- the layout and its JSON documents ---
		{name: "missing oci-layout", want: ociread.ErrNotLayout, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			os.Remove(filepath.Join(dir, "oci-layout"))
			return o
		}},
		{name: "wrong oci-layout version", want: ociread.ErrNotLayout, msg: `"2.0.0"`, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644)
			return o
		}},
		{name: "layout directory missing", want: ociread.ErrNotLayout, build: func(t *testing.T, dir string) ociclip.Options {
			return ociclip.Options{LayoutPath: filepath.Join(dir, "nothing-here")}
		}},
		{name: "index.json is not JSON", want: ociread.ErrMalformed, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			os.WriteFile(filepath.Join(dir, "index.json"), []byte("{\"schemaVersion\":2,\"manifests\":[{"), 0o644)
			return o
		}},
		{name: "index.json over the default JSON limit (9 MiB)", want: ociread.ErrLimit, msg: "MaxJSONBytes 8388608", build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			b, _ := json.Marshal(l.Index)
			b = append(b, bytes.Repeat([]byte(" "), 9<<20)...) // still valid JSON
			os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)
			return o
		}},
		{name: "limit MaxJSONBytes: manifest over a low limit", want: ociread.ErrLimit, msg: "MaxJSONBytes 300", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...), gzipLayer(baseEntries()...)))
			return lim(o, ociclip.Limits{MaxJSONBytes: 300})
		}},
		{name: "limit MaxJSONBytes: config descriptor claims 1 TiB", want: ociread.ErrLimit, msg: "MaxJSONBytes", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditManifest: func(m *v1.Manifest) { m.Config.Size = 1 << 40 }})
			return o
		}},
		// A cycle of nested indexes cannot be written: an index holds its
		// children's digests, so a cycle needs a document that contains
		// (indirectly) its own sha256. ociread's own tests build one with
		// digest checks off (ErrCycle). What a layout can do is nest deep.
		{name: "limit MaxIndexDepth: 9 nested indexes at the default limit (8)", want: ociread.ErrLimit, msg: "MaxIndexDepth 8", build: func(t *testing.T, dir string) ociclip.Options {
			l, o := twoPlatforms(t, dir)
			top := nestIndex(t, dir, l.Nested["t"], 8)
			top.Annotations = map[string]string{v1.AnnotationRefName: "t"}
			writeIndexJSON(t, dir, top)
			return o
		}},
		{name: "limit MaxIndexDepth: 3 nested indexes, limit 2", want: ociread.ErrLimit, msg: "MaxIndexDepth 2", build: func(t *testing.T, dir string) ociclip.Options {
			l, o := twoPlatforms(t, dir)
			top := nestIndex(t, dir, l.Nested["t"], 2)
			top.Annotations = map[string]string{v1.AnnotationRefName: "t"}
			writeIndexJSON(t, dir, top)
			return lim(o, ociclip.Limits{MaxIndexDepth: 2})
		}},
		{name: "ref that does not exist", want: ociread.ErrRefNotFound, msg: `"t"`, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			o.LayoutRef = "no-such-tag"
			return o
		}},
		{name: "index.json lists no manifests", want: ociread.ErrRefNotFound, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			writeIndexJSON(t, dir)
			o.LayoutRef = ""
			return o
		}},
		{name: "no ref and two images", want: ociread.ErrAmbiguous, build: func(t *testing.T, dir string) ociclip.Options {
			img := imageOf(gzipLayer(baseEntries()...))
			if _, err := testimage.Write(dir, testimage.Ref{Name: "a", Image: &img}, testimage.Ref{Name: "b", Image: &img}); err != nil {
				t.Fatal(err)
			}
			return ociclip.Options{LayoutPath: dir}
		}},
		{name: "platform that does not exist", want: ociread.ErrPlatformNotFound, msg: "linux/amd64, linux/arm64/v8", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := twoPlatforms(t, dir)
			o.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
			return o
		}},
		{name: "platform without an architecture", want: ociread.ErrInvalidPlatform, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := twoPlatforms(t, dir)
			o.Platform = &v1.Platform{OS: "linux"}
			return o
		}},
		{name: "unknown layer media type", want: ociread.ErrUnsupportedMediaType, msg: "application/vnd.example.layer", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{Entries: baseEntries(), MediaType: "application/vnd.example.layer"}))
			return o
		}},
		{name: "Docker schema 1 manifest", want: ociread.ErrUnsupportedMediaType, msg: "schema 1", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			b := []byte(`{"schemaVersion":1,"name":"x","tag":"t","fsLayers":[]}`)
			d := digest.FromBytes(b)
			os.WriteFile(testimage.BlobPath(dir, d), b, 0o644)
			writeIndexJSON(t, dir, v1.Descriptor{Digest: d, Size: int64(len(b)), Annotations: map[string]string{v1.AnnotationRefName: "t"}})
			return o
		}},
		{name: "layers and diff_ids disagree (count)", want: ociread.ErrMalformed, msg: "1 rootfs.diff_ids but the manifest has 2 layers", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...), gzipLayer(baseEntries()...)},
				EditConfig: func(c *v1.Image) { c.RootFS.DiffIDs = c.RootFS.DiffIDs[:1] }})
			return o
		}},
		{name: "descriptor with a negative size", want: ociread.ErrMalformed, msg: "negative size", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditManifest: func(m *v1.Manifest) { m.Layers[0].Size = -1 }})
			return o
		}},
		{name: "descriptor digest that climbs out of blobs/", want: ociread.ErrInvalidDigest, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditManifest: func(m *v1.Manifest) { m.Layers[0].Digest = "sha256:../../../../etc/passwd" }})
			return o
		}},

		// --- blobs ---
		{name: "missing layer blob", want: ociread.ErrBlobMissing, build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			os.Remove(testimage.BlobPath(dir, l.Images["t"].LayerDigests[0]))
			return o
		}},
		{name: "layer blob is a FIFO (no hang)", want: ociread.ErrBlobMissing, msg: "not a regular file", build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			p := testimage.BlobPath(dir, l.Images["t"].LayerDigests[0])
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return o
		}},
		{name: "truncated layer blob file", want: ociread.ErrSizeMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			testimage.CorruptBlob(dir, l.Images["t"].LayerDigests[0], func(b []byte) []byte { return b[:len(b)/2] })
			return o
		}},
		{name: "blob size mismatch: descriptor one byte too long", want: ociread.ErrSizeMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditManifest: func(m *v1.Manifest) { m.Layers[0].Size++ }})
			return o
		}},
		{name: "absurd descriptor size (1 EiB)", want: ociread.ErrSizeMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditManifest: func(m *v1.Manifest) { m.Layers[0].Size = 1 << 60 }})
			return o
		}},
		{name: "digest mismatch: one byte of an uncompressed layer's file data changed", want: ociread.ErrDigestMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(testimage.Layer{Entries: baseEntries(), Compression: testimage.None}))
			w := l.Images["t"]
			testimage.CorruptBlob(dir, w.LayerDigests[0], testimage.FlipByte(int(w.EntryPositions[0][3].DataOffset)))
			return o
		}},
		{name: "digest mismatch: config changed", want: ociread.ErrDigestMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			testimage.CorruptBlob(dir, l.Images["t"].ConfigDigest, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"linux"`), []byte(`"Linux"`), 1)
			})
			return o
		}},
		// A small blob is read whole (into the 64 KiB read buffer) before
		// inflating starts, so its digest is compared first; in a larger
		// one a changed byte breaks the deflate stream or the gzip CRC
		// before the blob's end, where the digest is compared: ociclip then
		// reads the rest of the blob, and the error is the digest mismatch
		// (wrapping the decompression error too).
		{name: "one byte of a small gzip layer changed", want: ociread.ErrDigestMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			testimage.CorruptBlob(dir, l.Images["t"].LayerDigests[0], testimage.FlipByte(-6))
			return o
		}},
		{name: "one byte of a 1 MiB gzip layer's deflate data changed", want: ociread.ErrDigestMismatch, msg: "reading it also failed", build: func(t *testing.T, dir string) ociclip.Options {
			l, o := writeImage(t, dir, imageOf(gzipLayer(testimage.Entry{Name: "noise", Body: noise(1 << 20)})))
			testimage.CorruptBlob(dir, l.Images["t"].LayerDigests[0], testimage.FlipByte(300<<10))
			return o
		}},

		// --- compression ---
		{name: "truncated gzip stream (consistent descriptor)", want: tarindex.ErrCorrupt, msg: "truncated", build: func(t *testing.T, dir string) ociclip.Options {
			b := mustCompress(t, mustTar(t, baseEntries()...), testimage.Gzip)
			_, o := writeImage(t, dir, imageOf(rawLayer(b[:len(b)/2], testimage.Gzip)))
			return o
		}},
		{name: "gzip with a bad CRC", want: tarindex.ErrCorrupt, msg: "CRC32", build: func(t *testing.T, dir string) ociclip.Options {
			b := mustCompress(t, mustTar(t, baseEntries()...), testimage.Gzip)
			b[len(b)-8] ^= 0xff
			_, o := writeImage(t, dir, imageOf(rawLayer(b, testimage.Gzip)))
			return o
		}},
		{name: "gzip with trailing garbage", want: tarindex.ErrCorrupt, msg: "trailing garbage", build: func(t *testing.T, dir string) ociclip.Options {
			b := mustCompress(t, mustTar(t, baseEntries()...), testimage.Gzip)
			_, o := writeImage(t, dir, imageOf(rawLayer(append(b, "garbage!"...), testimage.Gzip)))
			return o
		}},
		{name: "zstd with a corrupt frame", want: tarindex.ErrCorrupt, msg: "zstd", build: func(t *testing.T, dir string) ociclip.Options {
			b := mustCompress(t, mustTar(t, baseEntries()...), testimage.Zstd)
			b[len(b)/2] ^= 0x55
			_, o := writeImage(t, dir, imageOf(rawLayer(b, testimage.Zstd)))
			return o
		}},
		{name: "media type says gzip over zstd bytes", want: tarindex.ErrCompressionMismatch, msg: "zstd", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{Entries: baseEntries(), Compression: testimage.Zstd, MediaType: v1.MediaTypeImageLayerGzip}))
			return o
		}},
		{name: "media type says tar over gzip bytes", want: tarindex.ErrCompressionMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{Entries: baseEntries(), MediaType: v1.MediaTypeImageLayer}))
			return o
		}},
		{name: "limit MaxUncompressedBytes: decompression bomb (zstd, 64 MiB of zeros in a few KB)", want: tarindex.ErrLimit, msg: "MaxUncompressedBytes 1048576", build: func(t *testing.T, dir string) ociclip.Options {
			bomb := mustCompress(t, make([]byte, 64<<20), testimage.Zstd)
			if len(bomb) > 64<<10 {
				t.Fatalf("bomb of %d bytes", len(bomb))
			}
			_, o := writeImage(t, dir, imageOf(rawLayer(bomb, testimage.Zstd)))
			return lim(o, ociclip.Limits{MaxUncompressedBytes: 1 << 20})
		}},
		{name: "limit MaxUncompressedBytes: gzip bomb", want: tarindex.ErrLimit, msg: "MaxUncompressedBytes 1048576", build: func(t *testing.T, dir string) ociclip.Options {
			bomb := mustCompress(t, make([]byte, 16<<20), testimage.Gzip)
			_, o := writeImage(t, dir, imageOf(rawLayer(bomb, testimage.Gzip)))
			return lim(o, ociclip.Limits{MaxUncompressedBytes: 1 << 20})
		}},

		// --- tar streams ---
		{name: "layer ends mid-header", want: tarindex.ErrCorrupt, msg: "inside a header", build: func(t *testing.T, dir string) ociclip.Options {
			u := mustTar(t, baseEntries()...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u[:512+100]}))
			return o
		}},
		{name: "tar header claims more bytes than the stream has", want: tarindex.ErrCorrupt, build: func(t *testing.T, dir string) ociclip.Options {
			u := append(ustarHeader("big", tar.TypeReg, octalSize(1<<20)), bytes.Repeat([]byte("x"), 100)...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u}))
			return o
		}},
		{name: "tar header with a negative size", want: tarindex.ErrCorrupt, build: func(t *testing.T, dir string) ociclip.Options {
			neg := base256Size(-5)
			neg[0] = 0xff
			for i := 1; i < 4; i++ {
				neg[i] = 0xff
			}
			u := append(ustarHeader("neg", tar.TypeReg, neg), make([]byte, 1024)...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u}))
			return o
		}},
		{name: "tar header with an absurd size (2^62, base-256)", want: tarindex.ErrCorrupt, build: func(t *testing.T, dir string) ociclip.Options {
			u := append(ustarHeader("huge", tar.TypeReg, base256Size(1<<62)), make([]byte, 4096)...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u, Compression: testimage.None}))
			return o
		}},
		{name: "tar header with an unparsable size field", want: tarindex.ErrCorrupt, build: func(t *testing.T, dir string) ociclip.Options {
			u := append(ustarHeader("bad", tar.TypeReg, []byte("12x4\x00")), make([]byte, 1024)...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u}))
			return o
		}},
		{name: "NUL in a PAX path (archive/tar refuses it)", want: tarindex.ErrCorrupt, build: func(t *testing.T, dir string) ociclip.Options {
			u := append(paxFile("x", nil, "path", "etc/a\x00/../../x"), make([]byte, 1024)...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: u}))
			return o
		}},
		{name: "NUL in a GNU long name (archive/tar cuts the name there: success)", build: func(t *testing.T, dir string) ociclip.Options {
			long := []byte("etc/evil\x00/../../../x")
			u := ustarHeader("././@LongLink", 'L', octalSize(int64(len(long))))
			u = append(u, long...)
			u = append(u, make([]byte, 512-len(long))...)
			u = append(u, ustarHeader("placeholder", tar.TypeReg, octalSize(0))...)
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: append(u, make([]byte, 1024)...)}))
			return o
		}, check: func(t *testing.T, res *ociclip.Result, out string) {
			a, err := archive.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, n := range a.Nodes {
				paths = append(paths, n.Path)
			}
			if !slices.Equal(paths, []string{"/", "/etc", "/etc/evil"}) {
				t.Errorf("nodes %q", paths)
			}
		}},
		{name: "absolute and dotted paths are taken relative to the root (success)", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(append(baseEntries(),
				testimage.Entry{Name: "/abs/file", Body: []byte("abs")},
				testimage.Entry{Name: "./dot/./x/../file", Body: []byte("dot")},
				testimage.Entry{Name: "//double//slash/", Type: tar.TypeDir},
				testimage.Entry{Name: "/etc/sym", Type: tar.TypeSymlink, Linkname: "/../../etc/hostname"},
			)...)))
			return o
		}, check: func(t *testing.T, res *ociclip.Result, out string) {
			md, err := clip.NewClipArchiver().ExtractMetadata(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"/abs/file", "/dot/file", "/double/slash", "/etc/sym"} {
				if md.Get(p) == nil {
					t.Errorf("no node %s", p)
				}
			}
			// A symlink target is kept verbatim: it is resolved inside the
			// root by whoever follows it.
			if n := md.Get("/etc/sym"); n != nil && n.Target != "/../../etc/hostname" {
				t.Errorf("symlink target %q", n.Target)
			}
		}},
		{name: "names and hard-link targets with .. climbing out of the root stop at the root, as in containerd and umoci (success)", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(append(baseEntries(),
				testimage.Entry{Name: "usr/../../../etc/climbed", Body: []byte("x")},
				testimage.Entry{Name: "l", Type: tar.TypeLink, Linkname: "../../etc/climbed"},
			)...)))
			return o
		}, check: func(t *testing.T, res *ociclip.Result, out string) {
			md, err := clip.NewClipArchiver().ExtractMetadata(out)
			if err != nil {
				t.Fatal(err)
			}
			f, l := md.Get("/etc/climbed"), md.Get("/l")
			if f == nil || l == nil || f.Attr.Ino != l.Attr.Ino || l.Attr.Nlink != 2 {
				t.Errorf("/etc/climbed %+v, /l %+v: want one inode, two names", f, l)
			}
		}},
		{name: "hard link to a missing target", want: archive.ErrHardlink, msg: "does not exist", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(append(baseEntries(), testimage.Entry{Name: "bin/ls", Type: tar.TypeLink, Linkname: "bin/nothing"})...)))
			return o
		}},
		{name: "whiteout of the root (.wh. naming nothing)", want: archive.ErrBadWhiteout, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...), gzipLayer(testimage.Entry{Name: ".wh."})))
			return o
		}},
		{name: "whiteout of .. (etc/.wh..)", want: archive.ErrBadWhiteout, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...), gzipLayer(testimage.Entry{Name: "etc/.wh.."})))
			return o
		}},
		{name: "symlink loop in a parent path", want: archive.ErrSymlinkLoop, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(
				testimage.Entry{Name: "a", Type: tar.TypeSymlink, Linkname: "b"},
				testimage.Entry{Name: "b", Type: tar.TypeSymlink, Linkname: "a"},
				testimage.Entry{Name: "a/file", Body: []byte("x")},
			)))
			return o
		}},
		// Merge builds a tree larger than the entries: missing parents are
		// synthesized (one node per component, each holding its full path)
		// and symlinks in parent paths are resolved. Before archive's
		// MergeLimits, 300 entries of 4 KB "a/a/..." chains (a 12 KB gzip
		// blob) made 600,001 nodes, 6.8 GiB of heap and a 1.2 GB archive.
		{name: "symlinked parents resolve to a path over the default MaxPathLen", want: archive.ErrLimit, msg: "MaxPathLen 4096", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(symlinkedParents()...)))
			return o
		}},
		{name: "limit MaxPathLen: symlinked parents resolve past a low limit (62-byte names, 7532-byte path)", want: archive.ErrLimit, msg: "MaxPathLen 300", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(symlinkedParents()...)))
			return lim(o, ociclip.Limits{MaxPathLen: 300})
		}},
		{name: "limit MaxNodes (default, 2 x entries + 4096): 20 entries synthesize 20,000 parents", want: archive.ErrLimit, msg: "MaxNodes 4136", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: deepChains(20, 999)}))
			return o
		}},
		{name: "limit MaxNodes: 150 nodes, limit 100", want: archive.ErrLimit, msg: "MaxNodes 100", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: tinyEntries(150)}))
			return lim(o, ociclip.Limits{MaxNodes: 100})
		}},
		// containerd's rootPath cleans each symlink target lexically, so
		// these resolve at once (they cost 6.8 ms per entry when walked).
		{name: "symlinks in parents that walk down and up ('d/../' x 800, 40 hops: success, /d/f)", check: func(t *testing.T, res *ociclip.Result, out string) {
			md, err := clip.NewClipArchiver().ExtractMetadata(out)
			if err != nil {
				t.Fatal(err)
			}
			if md.Get("/d/f") == nil {
				t.Error("no node /d/f")
			}
		}, build: func(t *testing.T, dir string) ociclip.Options {
			es := []testimage.Entry{{Name: "d/", Type: tar.TypeDir}}
			for k := 0; k < 39; k++ {
				es = append(es, testimage.Entry{Name: fmt.Sprintf("s%d", k), Type: tar.TypeSymlink, Linkname: strings.Repeat("d/../", 800) + fmt.Sprintf("s%d", k+1)})
			}
			es = append(es, testimage.Entry{Name: "s39", Type: tar.TypeSymlink, Linkname: "d"}, testimage.Entry{Name: "s0/f", Body: []byte("x")})
			_, o := writeImage(t, dir, imageOf(gzipLayer(es...)))
			return o
		}},
		{name: "30,000 chained hard links (success, in linear time)", build: func(t *testing.T, dir string) ociclip.Options {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "l30000", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644, ModTime: testimage.DefaultTime})
			tw.Write([]byte("x"))
			for i := 29999; i >= 0; i-- {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("l%d", i), Typeflag: tar.TypeLink, Linkname: fmt.Sprintf("l%d", i+1), Mode: 0o644, ModTime: testimage.DefaultTime})
			}
			tw.Close()
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: buf.Bytes()}))
			return o
		}, check: func(t *testing.T, res *ociclip.Result, out string) {
			if res.HardLinks != 30000 || res.Files != 30001 {
				t.Errorf("%d hard links, %d files", res.HardLinks, res.Files)
			}
		}},
		{name: "GNU sparse file", want: tarindex.ErrSparse, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(testimage.Entry{Name: "sparse", Type: tar.TypeGNUSparse,
				Sparse: []testimage.SparseFragment{{Offset: 0, Length: 512}, {Offset: 8192, Length: 10}}, SparseSize: 16384, Body: make([]byte, 522)})))
			return o
		}},
		{name: "PAX sparse file (GNU sparse 1.0)", want: tarindex.ErrSparse, build: func(t *testing.T, dir string) ociclip.Options {
			sparseMap := append([]byte("1\n0\n512\n"), make([]byte, 512-8)...)
			u := paxFile("GNUSparseFile.0/sparse", append(sparseMap, make([]byte, 512)...),
				"GNU.sparse.major", "1", "GNU.sparse.minor", "0", "GNU.sparse.name", "sparse", "GNU.sparse.realsize", "4096")
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: append(u, make([]byte, 1024)...)}))
			return o
		}},
		{name: "limit MaxEntries: 1500 tiny entries, limit 1000", want: tarindex.ErrLimit, msg: "MaxEntries 1000", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(testimage.Layer{RawTar: tinyEntries(1500)}))
			return lim(o, ociclip.Limits{MaxEntries: 1000})
		}},
		{name: "limit MaxPathLen: a 200-byte name, limit 100", want: tarindex.ErrLimit, msg: "MaxPathLen 100", build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(testimage.Entry{Name: strings.Repeat("d/", 100) + "f", Body: []byte("x")})))
			return lim(o, ociclip.Limits{MaxPathLen: 100})
		}},
		{name: "layer DiffID differs from the config", want: ociclip.ErrDiffIDMismatch, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, testimage.Image{Layers: []testimage.Layer{gzipLayer(baseEntries()...)},
				EditConfig: func(c *v1.Image) { c.RootFS.DiffIDs[0] = digest.FromString("another layer") }})
			return o
		}},

		// --- options and the output path ---
		{name: "output path is a directory", want: syscall.EISDIR, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			o.OutputPath = t.TempDir()
			return o
		}},
		{name: "output directory does not exist", want: fs.ErrNotExist, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			o.OutputPath = filepath.Join(t.TempDir(), "missing", "img.clip")
			return o
		}},
		{name: "invalid storage reference", want: archive.ErrStorageRef, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			o.StorageImageRef = "UPPER/Case:tag"
			return o
		}},
		{name: "context cancelled before the run", want: context.Canceled, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			return o
		}, ctx: func(*ociclip.Options) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
		{name: "context cancelled while the second of three layers is indexed", want: context.Canceled, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...), gzipLayer(testimage.Entry{Name: "noise", Body: noise(4 << 20)}), gzipLayer(baseEntries()...)))
			o.Concurrency = 1
			return o
		}, ctx: func(o *ociclip.Options) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			o.LayerProgress = func(p ociclip.LayerProgress) {
				if p.LayerIndex == 2 && p.Stage == ociclip.StageIndexing {
					cancel()
				}
			}
			return ctx
		}},
		{name: "negative CheckpointMiB", want: ociclip.ErrOptions, build: func(t *testing.T, dir string) ociclip.Options {
			_, o := writeImage(t, dir, imageOf(gzipLayer(baseEntries()...)))
			o.CheckpointMiB = -1
			return o
		}},
	}
}

// symlinkedParents are entries "l", "l/l", ... (symlinks to 250 x's, each
// placed through the previous ones) and "l/.../l/f" (62 bytes), which
// resolves to a 7532-byte path.
func symlinkedParents() []testimage.Entry {
	var es []testimage.Entry
	for k := 0; k < 30; k++ {
		es = append(es, testimage.Entry{Name: strings.Repeat("l/", k) + "l", Type: tar.TypeSymlink, Linkname: strings.Repeat("x", 250)})
	}
	return append(es, testimage.Entry{Name: strings.Repeat("l/", 30) + "f", Body: []byte("x")})
}

// deepChains is an uncompressed tar of n files, each depth directories
// deep in its own chain, without the directories.
func deepChains(n, depth int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < n; i++ {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/%sf", i, strings.Repeat("a/", depth-1)), Mode: 0o644, Typeflag: tar.TypeReg, ModTime: testimage.DefaultTime})
	}
	tw.Close()
	return buf.Bytes()
}

// noise returns n pseudo-random bytes (incompressible).
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// tinyEntries is an uncompressed tar of n empty files.
func tinyEntries(n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < n; i++ {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f/%07d", i), Mode: 0o644, Typeflag: tar.TypeReg, ModTime: testimage.DefaultTime})
	}
	tw.Close()
	return buf.Bytes()
}

func TestCatalogue(t *testing.T) {
	rows := catalogue()
	if len(rows) < 30 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			// Each failing row runs twice: without an output file, and
			// with one that must survive unchanged.
			for _, existing := range []bool{false, true} {
				if existing && r.want == nil {
					continue
				}
				runRow(t, r, existing)
			}
		})
	}
}

func runRow(t *testing.T, r catRow, existing bool) {
	t.Helper()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	opts := r.build(t, layout)
	outDir := filepath.Join(dir, "out")
	if opts.OutputPath == "" {
		opts.OutputPath = filepath.Join(outDir, "img.clip")
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	parent := filepath.Dir(opts.OutputPath)
	old := []byte("the archive of an earlier run")
	if existing {
		if fi, err := os.Stat(opts.OutputPath); err == nil && fi.IsDir() {
			return // the output path is the directory itself
		}
		if _, err := os.Stat(parent); err != nil {
			return // the output directory is missing: nothing can exist
		}
		if err := os.WriteFile(opts.OutputPath, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := listDir(parent)
	layoutBefore := snapshot(t, layout)
	ctx := context.Background()
	if r.ctx != nil {
		ctx = r.ctx(&opts)
	}
	res, err := ociclip.CreateFromOCILayout(ctx, opts)
	if after := snapshot(t, layout); !slices.Equal(layoutBefore, after) {
		t.Errorf("the layout changed:\n%q\n%q", layoutBefore, after)
	}
	if r.want == nil {
		if err != nil {
			t.Fatalf("CreateFromOCILayout: %v", err)
		}
		if got := listDir(parent); !slices.Equal(got, []string{filepath.Base(opts.OutputPath)}) {
			t.Errorf("output directory holds %v", got)
		}
		if r.check != nil {
			r.check(t, res, opts.OutputPath)
		}
		return
	}
	if !errors.Is(err, r.want) {
		t.Fatalf("err = %v\nwant one wrapping %q", err, r.want)
	}
	if r.msg != "" && !strings.Contains(err.Error(), r.msg) {
		t.Errorf("error %q does not mention %q", err, r.msg)
	}
	if res != nil {
		t.Errorf("result %+v with an error", res)
	}
	// The output path is as it was, and nothing was added next to it.
	b, rerr := os.ReadFile(opts.OutputPath)
	switch {
	case existing && (rerr != nil || !bytes.Equal(b, old)):
		t.Errorf("existing output changed: %q, %v", b, rerr)
	case !existing && !errors.Is(rerr, fs.ErrNotExist) && !errors.Is(rerr, syscall.EISDIR):
		t.Errorf("output %s exists after a failed run (%v)", opts.OutputPath, rerr)
	}
	if after := listDir(parent); !slices.Equal(before, after) {
		t.Errorf("output directory was %v, is %v", before, after)
	}
}

// snapshot lists every file below dir with its type, size and mtime.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a missing layout is some rows' input
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	return out
}

// listDir lists the names in dir (nil if it does not exist).
func listDir(dir string) []string {
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// peakHeap runs fn while sampling the heap every few milliseconds and
// returns the highest HeapAlloc seen above the level before fn.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
				peak = ms.HeapAlloc - base
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak
}

// TestCatalogueDefaultLimits: the defaults are what the documentation says,
// and a decompression bomb run at the default limits streams through in
// bounded memory (MaxUncompressedBytes bounds the time such a layer costs,
// not the memory, which does not depend on the layer size).
func TestCatalogueDefaultLimits(t *testing.T) {
	if limits.DefaultMaxEntries != 1_000_000 || limits.DefaultMaxPathLen != 4096 || limits.DefaultMaxUncompressedBytes != 1<<40 ||
		limits.DefaultMaxJSONBytes != 8<<20 || limits.DefaultMaxIndexDepth != 8 {
		t.Errorf("defaults changed: update the documentation (ociclip.Limits) and this test")
	}
	dir := t.TempDir()
	const size = 256 << 20
	bomb := mustCompress(t, make([]byte, size), testimage.Zstd)
	_, o := writeImage(t, filepath.Join(dir, "layout"), imageOf(rawLayer(bomb, testimage.Zstd)))
	o.OutputPath = filepath.Join(dir, "bomb.clip")
	var res *ociclip.Result
	var err error
	start := time.Now()
	peak := peakHeap(func() { res, err = ociclip.CreateFromOCILayout(context.Background(), o) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bomb: %d-byte zstd blob, %d bytes uncompressed, indexed at default limits in %v, peak heap +%.1f MiB",
		len(bomb), res.UncompressedBytes, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20))
	if res.UncompressedBytes != size || res.Nodes != 1 {
		t.Errorf("result %+v", res)
	}
	if peak > 64<<20 {
		t.Errorf("peak heap +%d bytes for a streaming pass", peak)
	}
}

// TestCatalogueManyEntries: ~200k tiny entries at the default limits; the
// peak heap is logged per entry (the default MaxEntries allows 1 million
// per layer, so this is what such a layer would cost) and bounded.
func TestCatalogueManyEntries(t *testing.T) {
	const n = 200_000
	dir := t.TempDir()
	_, o := writeImage(t, filepath.Join(dir, "layout"), imageOf(testimage.Layer{RawTar: tinyEntries(n)}))
	o.OutputPath = filepath.Join(dir, "many.clip")
	var res *ociclip.Result
	var err error
	start := time.Now()
	peak := peakHeap(func() { res, err = ociclip.CreateFromOCILayout(context.Background(), o) })
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(o.OutputPath)
	t.Logf("%d entries in %v: peak heap +%.1f MiB (%d bytes per entry), archive %d bytes; at the default MaxEntries (%d) one layer would need about %.1f GiB",
		n, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20), peak/n, fi.Size(), limits.DefaultMaxEntries, float64(peak)/n*limits.DefaultMaxEntries/(1<<30))
	if res.Files != n {
		t.Errorf("%d files", res.Files)
	}
	if peak > 2048*n {
		t.Errorf("peak heap %d bytes, more than 2 KiB per entry", peak)
	}
}

// TestCatalogueVerifyHostileNode: Reader.Verify (ociclip verify) does not
// allocate the length a .clip node claims before checking it: it used to
// (a node claiming 1 TiB was "fatal error: runtime: out of memory"; fixed
// in 41c9969). Here a 256 MiB claim in a layer of a few KB must fail
// without costing 256 MiB.
func TestCatalogueVerifyHostileNode(t *testing.T) {
	dir := t.TempDir()
	_, o := writeImage(t, filepath.Join(dir, "layout"), imageOf(gzipLayer(baseEntries()...)))
	o.OutputPath = filepath.Join(dir, "img.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	a, err := archive.ReadFile(o.OutputPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range a.Nodes {
		if n.Path == "/bin/sh" {
			n.Remote.ULength = 1 << 28
			n.Attr.Size = 1 << 28
		}
	}
	var buf bytes.Buffer
	if err := archive.Encode(&buf, a.Nodes, &a.Storage, a.Extension); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.OutputPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n, verr := verifyAllocs(t, o)
	if verr == nil {
		t.Error("Verify accepted a node claiming 256 MiB in a layer of a few KB")
	}
	if n > 64<<20 {
		t.Errorf("Verify allocated %d MiB for a hostile node", n>>20)
	}
}

// TestCatalogueVerifyZstdWindow: Reader.Verify's replay of a zstd layer
// caps the decoder's window like tarindex does. It used the decoder's
// default limits: a layer blob whose 6-byte frame header declared a 512 MiB
// window made `ociclip verify` allocate 512 MiB (fixed in 1237702). Blobs
// are read by digest without a digest check there, so a changed file in
// the layout is enough.
func TestCatalogueVerifyZstdWindow(t *testing.T) {
	dir := t.TempDir()
	l, o := writeImage(t, filepath.Join(dir, "layout"), imageOf(testimage.Layer{Entries: baseEntries(), Compression: testimage.Zstd}))
	o.OutputPath = filepath.Join(dir, "img.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// A frame: magic, descriptor (no single segment), window 2^29,
	// one last raw block of 100 bytes.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x98, 0x21, 0x03, 0x00} // block header 100<<3|1
	frame = append(frame, make([]byte, 100)...)
	if err := os.WriteFile(testimage.BlobPath(o.LayoutPath, l.Images["t"].LayerDigests[0]), frame, 0o644); err != nil {
		t.Fatal(err)
	}
	n, verr := verifyAllocs(t, o)
	if verr == nil {
		t.Error("Verify accepted a replaced layer blob")
	}
	if n > 160<<20 {
		t.Errorf("Verify allocated %d MiB for a 109-byte layer blob (%v)", n>>20, verr)
	}
}

// A tampered blob whose damage breaks decompression before its end reports
// the digest mismatch (the blob is what is wrong) and still wraps the
// decompression error; the output is not written.
func TestTamperedLayerReportsDigestMismatch(t *testing.T) {
	dir := t.TempDir()
	l, o := writeImage(t, dir, imageOf(gzipLayer(testimage.Entry{Name: "noise", Body: noise(4 << 20)})))
	testimage.CorruptBlob(dir, l.Images["t"].LayerDigests[0], testimage.FlipByte(300<<10))
	o.OutputPath = filepath.Join(t.TempDir(), "o.clip")
	_, err := ociclip.CreateFromOCILayout(context.Background(), o)
	if !errors.Is(err, ociread.ErrDigestMismatch) || !errors.Is(err, tarindex.ErrCorrupt) {
		t.Fatalf("error %v: want ErrDigestMismatch wrapping ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), string(l.Images["t"].LayerDigests[0])) {
		t.Errorf("error does not name the layer: %v", err)
	}
	if _, serr := os.Stat(o.OutputPath); !os.IsNotExist(serr) {
		t.Errorf("output written: %v", serr)
	}
}

// verifyAllocs runs Reader.Verify over the archive and layout of o and
// returns the bytes it allocated and its error.
func verifyAllocs(t *testing.T, o ociclip.Options) (uint64, error) {
	t.Helper()
	r, err := ociclip.OpenReader(o.OutputPath, o.LayoutPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, verr := r.Verify(context.Background(), nil)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, verr
}
