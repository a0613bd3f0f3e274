package tarindex

import (
	"bytes"
	"context"
	"hash/crc32"
	"testing"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
)

func TestChunkCRCs(t *testing.T) {
	var es []testimage.Entry
	for i := 0; i < 5; i++ {
		es = append(es, testimage.Entry{Name: string(rune('a'+i)) + ".bin", Body: bytes.Repeat([]byte{byte(i), 7, 9}, 50_000+i*10_000)})
	}
	tarb, err := testimage.TarBytes(es)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []testimage.Compression{testimage.Gzip, testimage.ZstdMulti, testimage.None} {
		blob, err := testimage.Compress(tarb, c)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Index(context.Background(), bytes.NewReader(blob), Options{})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		want := (int64(len(tarb)) + layerz.ChunkSize - 1) / layerz.ChunkSize
		if res.ChunkSize != layerz.ChunkSize || int64(len(res.ChunkCRCs)) != want {
			t.Fatalf("%s: %d CRCs of size %d, want %d", c, len(res.ChunkCRCs), res.ChunkSize, want)
		}
		for i, got := range res.ChunkCRCs {
			lo := int64(i) * layerz.ChunkSize
			hi := min(lo+layerz.ChunkSize, int64(len(tarb)))
			if w := crc32.Checksum(tarb[lo:hi], crc32.MakeTable(crc32.Castagnoli)); got != w {
				t.Errorf("%s chunk %d: %08x, want %08x", c, i, got, w)
			}
		}
	}
}
