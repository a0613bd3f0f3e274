package spans_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/spans"
)

// FuzzEngineHostileIndex: resume points and zstd frames changed by the
// fuzzer (the checksums kept) never make the engine panic, hang or return
// bytes other than the layer's: every read either fails or is right.
func FuzzEngineHostileIndex(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 40), uint8(1))
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 9}, uint8(2))
	var layers []*oneLayer
	for _, c := range []testimage.Compression{testimage.Gzip, testimage.GzipMulti, testimage.ZstdMulti} {
		layers = append(layers, makeLayer(f, c))
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		l := layers[int(which)%len(layers)]
		// Work on copies: the archive is shared between runs.
		a := *l.a
		ext := *a.Extension
		ext.Layers = append(ext.Layers[:0:0], ext.Layers...)
		le := &ext.Layers[0]
		le.Points = append([]layerz.ResumePoint(nil), le.Points...)
		a.Extension = &ext
		num := func() int64 {
			if len(data) < 8 {
				return 0
			}
			v := int64(binary.LittleEndian.Uint64(data))
			data = data[8:]
			return v
		}
		for len(data) >= 9 {
			op := data[0]
			data = data[1:]
			switch op % 4 {
			case 0:
				if len(le.Points) > 0 {
					p := &le.Points[int(uint64(num())%uint64(len(le.Points)))]
					p.COff = num() % (l.blob + 10)
				}
			case 1:
				if len(le.Points) > 0 {
					p := &le.Points[int(uint64(num())%uint64(len(le.Points)))]
					p.UOff = num() % (int64(len(l.u)) + 10)
				}
			case 2:
				if len(le.Points) > 0 {
					i := int(uint64(num()) % uint64(len(le.Points)))
					le.Points = append(le.Points[:i], le.Points[i+1:]...)
				}
			case 3:
				if z := a.Storage.ZstdIdxByLayer[l.digest]; z != nil && len(z.Frames) > 0 {
					zc := &common.ZstdIndex{LayerDigest: z.LayerDigest, Frames: append([]common.ZstdFrame(nil), z.Frames...)}
					fr := &zc.Frames[int(uint64(num())%uint64(len(zc.Frames)))]
					fr.COff = num() % (l.blob + 10)
					fr.UOff = num() % (int64(len(l.u)) + 10)
					m := map[string]*common.ZstdIndex{}
					for k, v := range a.Storage.ZstdIdxByLayer {
						m[k] = v
					}
					m[l.digest] = zc
					a.Storage.ZstdIdxByLayer = m
				}
			}
		}
		e := spans.New(&a, l.src, spans.Options{CacheSize: 1 << 20, MaxSpan: 4 << 20})
		defer e.Close()
		for _, r := range [][2]int64{{0, 5000}, {int64(len(l.u)) / 3, 70000}, {int64(len(l.u)) - 3000, 3000}} {
			b := make([]byte, r[1])
			if err := e.ReadAt(context.Background(), l.digest, b, r[0]); err == nil && !bytes.Equal(b, l.u[r[0]:r[0]+r[1]]) {
				t.Fatalf("wrong bytes at %d without an error", r[0])
			}
		}
	})
}
