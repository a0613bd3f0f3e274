package ociclip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/tarindex"
)

type mapBlobs map[string][]byte

func (m mapBlobs) OpenLayer(d string) (io.ReaderAt, int64, error) {
	b, ok := m[d]
	if !ok {
		return nil, 0, fmt.Errorf("no blob %s", d)
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// oneLayerArchive encodes and decodes the archive of one layer holding the
// file /f, compressed with c.
func oneLayerArchive(t *testing.T, c testimage.Compression, withExt bool) (*archive.Archive, mapBlobs, []byte) {
	t.Helper()
	body := bytes.Repeat([]byte("0123456789"), 1000)
	u, err := testimage.TarBytes([]testimage.Entry{{Name: "f", Body: body}})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := testimage.Compress(u, c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tarindex.Index(context.Background(), bytes.NewReader(blob), tarindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(blob)
	nodes, _, err := archive.Merge([]archive.LayerEntries{{Digest: d.String(), Entries: res.Entries}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	descs := []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(blob))}}
	info, err := archive.BuildStorageInfo(archive.StorageRef{}, archive.ImageInfo{Layers: descs}, []*tarindex.Result{res})
	if err != nil {
		t.Fatal(err)
	}
	var ext *archive.Extension
	if withExt {
		ext = archive.BuildExtension(descs, []*tarindex.Result{res})
	}
	var buf bytes.Buffer
	if err := archive.Encode(&buf, nodes, info, ext); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return a, mapBlobs{d.String(): blob}, u
}

// TestFileReaderRangeOutsideStream: a node whose data does not lie inside
// its layer's uncompressed stream is ErrVerify, never zeros or a partial
// read passed off as the file, and ReadFile does not allocate for a length
// the layer cannot hold.
func TestFileReaderRangeOutsideStream(t *testing.T) {
	for _, tc := range []struct {
		c   testimage.Compression
		ext bool
	}{{testimage.Gzip, true}, {testimage.Zstd, true}, {testimage.None, true}, {testimage.None, false}} {
		t.Run(fmt.Sprintf("%s/ext=%v", tc.c, tc.ext), func(t *testing.T) {
			a, blobs, u := oneLayerArchive(t, tc.c, tc.ext)
			n := a.Nodes[1]
			if n.Path != "/f" {
				t.Fatalf("node %s", n.Path)
			}
			orig := *n.Remote
			fr := NewReader(a, blobs)
			if b, err := fr.ReadFile("f"); err != nil || !bytes.Equal(b, u[orig.UOffset:orig.UOffset+orig.ULength]) {
				t.Fatalf("intact: %v", err)
			}
			for name, r := range map[string]common.RemoteRef{
				"straddles the end":  {UOffset: int64(len(u)) - 100, ULength: 1000},
				"after the end":      {UOffset: int64(len(u)) + 5000, ULength: 100},
				"far after the end":  {UOffset: 1 << 40, ULength: 100},
				"absurd length":      {UOffset: orig.UOffset, ULength: 1 << 40},
				"ends one byte late": {UOffset: int64(len(u)) - 99, ULength: 100},
			} {
				r.LayerDigest = orig.LayerDigest
				n.Remote = &r
				fr := NewReader(a, blobs)
				buf := make([]byte, min(r.ULength, 4096))
				if k, err := fr.readAt(n, buf, 0); !errors.Is(err, ErrVerify) {
					t.Errorf("%s: ReadAt = %d, %v; want ErrVerify", name, k, err)
				}
				if _, err := fr.ReadFile("f"); !errors.Is(err, ErrVerify) {
					t.Errorf("%s: ReadFile: %v, want ErrVerify", name, err)
				}
			}
			// The last byte of the stream is readable.
			n.Remote = &common.RemoteRef{LayerDigest: orig.LayerDigest, UOffset: int64(len(u)) - 100, ULength: 100}
			if b, err := NewReader(a, blobs).ReadFile("f"); err != nil || !bytes.Equal(b, u[len(u)-100:]) {
				t.Errorf("last 100 bytes: %v", err)
			}
		})
	}
}

// TestFileReaderManyZstdFrames: a hostile frame index listing thousands of
// frames inside one read does not make the reader open them all at once
// (20,000 decoders: 26 MiB); the read fails on the first bad frame.
func TestFileReaderManyZstdFrames(t *testing.T) {
	a, blobs, _ := oneLayerArchive(t, testimage.ZstdMulti, true)
	for _, z := range a.Storage.ZstdIdxByLayer {
		f := z.Frames[0]
		z.Frames = nil
		for i := 0; i < 20000; i++ {
			g := f
			g.UOff, g.ULen = int64(i), 1
			z.Frames = append(z.Frames, g)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := NewReader(a, blobs).ReadFile("f")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrVerify) && !errors.Is(err, tarindex.ErrCorrupt) {
		t.Errorf("err = %v, want ErrVerify or ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("allocated %d MiB", n>>20)
	}
}
