package tarindex

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ociclip/ociclip/layerz"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type tarVariant struct {
	name  string
	tar   []byte
	files []tfile
}

func tarVariants(t testing.TB) []tarVariant {
	var vs []tarVariant
	add := func(name string, files []tfile, format tar.Format, modify func(*tar.Header)) {
		vs = append(vs, tarVariant{name, writeTar(t, files, format, modify), files})
	}
	add("ustar", fileSet(false, false), tar.FormatUSTAR, nil)
	add("pax", fileSet(true, true), tar.FormatPAX, func(h *tar.Header) {
		// sub-second times and atime/ctime force PAX records everywhere
		h.ModTime = h.ModTime.Add(123456789)
		h.AccessTime = h.ModTime.Add(1)
		h.ChangeTime = h.ModTime.Add(2)
	})
	add("gnu", fileSet(true, true), tar.FormatGNU, func(h *tar.Header) {
		h.AccessTime = h.ModTime.Add(5e9)
		h.ChangeTime = h.ModTime.Add(6e9)
	})
	// A tar without the end blocks, ending cleanly after an entry.
	small := fileSet(false, false)[:9]
	b := writeTar(t, small, tar.FormatUSTAR, nil)
	vs = append(vs, tarVariant{"no-end-blocks", b[:len(b)-1024], small})
	// Trailing zero padding after the end blocks (as tar(1) writes: 10 KiB records).
	b = writeTar(t, small, tar.FormatUSTAR, nil)
	b = append(b, make([]byte, 10240-len(b)%10240)...)
	vs = append(vs, tarVariant{"padded", b, small})
	return vs
}

// checkEntries compares res with the uncompressed tar u and the expected files.
func checkEntries(t *testing.T, res *Result, u []byte, files []tfile) {
	t.Helper()
	// The independent reading of the same tar gives the times archive/tar decodes.
	tr := tar.NewReader(bytes.NewReader(u))
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		hdrs = append(hdrs, h)
	}
	if len(res.Entries) != len(files) {
		for _, e := range res.Entries {
			t.Logf("got %s", describe(e))
		}
		t.Fatalf("%d entries, want %d", len(res.Entries), len(files))
	}
	for i, e := range res.Entries {
		w := files[i].want
		got := e
		got.Offset, got.ModTime, got.AccessTime, got.ChangeTime = 0, w.ModTime, w.AccessTime, w.ChangeTime
		if describe(got) != describe(w) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, describe(got), describe(w))
		}
		h := hdrs[i]
		if !e.ModTime.Equal(h.ModTime) || !e.AccessTime.Equal(h.AccessTime) || !e.ChangeTime.Equal(h.ChangeTime) {
			t.Errorf("entry %s: times %v %v %v, archive/tar says %v %v %v", e.Path, e.ModTime, e.AccessTime, e.ChangeTime, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if !h.AccessTime.IsZero() && e.AccessTime.IsZero() {
			t.Errorf("entry %s lost its atime", e.Path)
		}
		if e.Kind == KindFile {
			if e.Offset <= 0 || e.Offset+e.Size > int64(len(u)) {
				t.Errorf("entry %s: offset %d size %d outside the stream (%d)", e.Path, e.Offset, e.Size, len(u))
				continue
			}
			if !bytes.Equal(u[e.Offset:e.Offset+e.Size], files[i].content) {
				t.Errorf("entry %s: bytes at offset %d differ from its content", e.Path, e.Offset)
			}
		} else if e.Offset != 0 || e.Size != 0 {
			t.Errorf("entry %s (%s): offset %d size %d, want 0", e.Path, e.Kind, e.Offset, e.Size)
		}
	}
	if want := digest.FromBytes(u); res.DiffID != want {
		t.Errorf("DiffID %s, want %s", res.DiffID, want)
	}
	if res.UncompressedSize != int64(len(u)) {
		t.Errorf("UncompressedSize %d, want %d", res.UncompressedSize, len(u))
	}
}

func TestIndexOffsets(t *testing.T) {
	t.Parallel()
	for _, v := range tarVariants(t) {
		for _, c := range codecs {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				blob := c.compress(t, v.tar)
				u := v.tar
				opts := []Options{
					{MediaType: c.mediaType, mode: modeSync, SpanBytes: 64 << 10},
					{mode: modeAsync, CheckpointMiB: 1, SpanBytes: -1},
				}
				if !raceEnabled {
					opts = append(opts, Options{MediaType: c.mediaType, mode: modeAsync})
				}
				for _, o := range opts {
					res := mustIndex(t, blob, o)
					if res.Compression != c.comp {
						t.Fatalf("compression %s, want %s", res.Compression, c.comp)
					}
					if res.CompressedSize != int64(len(blob)) {
						t.Errorf("CompressedSize %d, want %d", res.CompressedSize, len(blob))
					}
					checkEntries(t, res, u, v.files)
					switch c.comp {
					case layerz.Gzip:
						if len(res.GzipCheckpoints) == 0 && v.name != "padded" {
							t.Error("no gzip checkpoints")
						}
					default:
						if len(res.GzipCheckpoints)+len(res.ResumePoints) != 0 {
							t.Error("gzip checkpoints for a non-gzip layer")
						}
					}
					if (c.comp == layerz.Zstd) != (len(res.ZstdFrames) > 0) {
						t.Errorf("%d zstd frames for a %s layer", len(res.ZstdFrames), c.comp)
					}
				}
			})
		}
	}
}

// TestFixtures indexes the committed layouts: the three compressions of the
// busybox image must give the same entries, and their DiffIDs must be the
// plain layers' digests.
func TestFixtures(t *testing.T) {
	byDiffID := map[string][]Entry{}
	for _, l := range fixtureLayers(t, "busybox-plain") {
		res := mustIndex(t, l.blob, Options{MediaType: l.mediaType})
		if res.DiffID.String() != l.digest {
			t.Fatalf("plain layer %s: DiffID %s", l.digest, res.DiffID)
		}
		byDiffID[l.digest] = res.Entries
	}
	for _, layout := range []string{"busybox", "busybox-zstd", "umoci-insert"} {
		for _, l := range fixtureLayers(t, layout) {
			res := mustIndex(t, l.blob, Options{MediaType: l.mediaType, SpanBytes: 64 << 10})
			if res.CompressedSize != int64(len(l.blob)) {
				t.Errorf("%s layer %s: compressed size %d, blob %d", layout, l.digest, res.CompressedSize, len(l.blob))
			}
			u := decompress(t, l.blob, res.Compression)
			if res.DiffID != digest.FromBytes(u) {
				t.Errorf("%s layer %s: DiffID %s", layout, l.digest, res.DiffID)
			}
			if layout == "umoci-insert" {
				continue
			}
			want, ok := byDiffID[res.DiffID.String()]
			if !ok {
				t.Errorf("%s layer %s: DiffID %s is not a plain layer's digest", layout, l.digest, res.DiffID)
				continue
			}
			if len(want) != len(res.Entries) {
				t.Errorf("%s layer %s: %d entries, plain has %d", layout, l.digest, len(res.Entries), len(want))
				continue
			}
			for i := range want {
				if describe(want[i]) != describe(res.Entries[i]) || want[i].Offset != res.Entries[i].Offset {
					t.Errorf("%s layer %s entry %d: %s, plain has %s", layout, l.digest, i, describe(res.Entries[i]), describe(want[i]))
				}
			}
		}
	}
	// Spot checks from testdata/README.md.
	var found int
	for _, es := range byDiffID {
		for _, e := range es {
			switch e.Path {
			case "/bin/busybox":
				found++
				if e.Size != 1982256 || e.Mode != 0755 {
					t.Errorf("busybox: %s", describe(e))
				}
			case "/tmp":
				found++
				if e.Mode != 01777 {
					t.Errorf("/tmp: %s", describe(e))
				}
			case "/usr/local/bin/suid-demo":
				found++
				if e.Mode != 04755 {
					t.Errorf("suid-demo: %s", describe(e))
				}
			case "/bin/true":
				found++
				if e.Kind != KindHardlink || e.Linkname != "bin/busybox" {
					t.Errorf("/bin/true: %s", describe(e))
				}
			}
		}
	}
	if found != 4 {
		t.Errorf("found %d of the 4 spot-checked entries", found)
	}
}

type fixtureLayer struct {
	digest, mediaType string
	blob              []byte
}

// fixtureLayers returns the layers of the one image of a testdata layout.
func fixtureLayers(t testing.TB, layout string) []fixtureLayer {
	t.Helper()
	dir := filepath.Join("..", "testdata", layout)
	readBlob := func(d digest.Digest) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	idxb, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(idxb, &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("index.json: %v", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(readBlob(idx.Manifests[0].Digest), &m); err != nil {
		t.Fatal(err)
	}
	var ls []fixtureLayer
	for _, l := range m.Layers {
		ls = append(ls, fixtureLayer{l.Digest.String(), l.MediaType, readBlob(l.Digest)})
	}
	return ls
}
