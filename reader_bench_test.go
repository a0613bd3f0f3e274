package ociclip_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
)

var (
	bigLayerOnce sync.Once
	bigLayerDir  string
	bigLayerErr  error
)

// bigLayerImage is one ~24 MiB gzip layer (pgzip-like sync flushes) of
// compressible text files; the last file is small.
func bigLayerImage(b *testing.B) string {
	bigLayerOnce.Do(func() {
		rng := rand.New(rand.NewSource(3))
		var es []testimage.Entry
		for i := 0; i < 24; i++ {
			es = append(es, testimage.Entry{Name: fmt.Sprintf("data/f%02d", i), Body: textish(rng, 1<<20)})
		}
		es = append(es, testimage.Entry{Name: "data/last.conf", Body: textish(rng, 4096)})
		bigLayerDir, bigLayerErr = os.MkdirTemp("", "ociclip-bench-")
		if bigLayerErr == nil {
			_, bigLayerErr = testimage.Write(bigLayerDir, testimage.Ref{Name: "big", Image: &testimage.Image{
				Layers: []testimage.Layer{{Entries: es, Compression: testimage.GzipFlush}},
			}})
		}
	})
	if bigLayerErr != nil {
		b.Fatal(bigLayerErr)
	}
	return bigLayerDir
}

// BenchmarkReadSmallFileNearEnd reads a 4 KiB file at the end of a 24 MiB
// gzip layer through the resumable checkpoints (span 4 MiB) and, for
// comparison, through an archive without them (inflating from the start).
// It reports the bytes inflated per read and the size of the archive.
func BenchmarkReadSmallFileNearEnd(b *testing.B) {
	dir := bigLayerImage(b)
	for _, tc := range []struct {
		name string
		span int64
	}{{"checkpoints", 0}, {"from-start", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "big.clip")
			if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: dir, OutputPath: out, SpanBytes: tc.span}); err != nil {
				b.Fatal(err)
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			r, err := ociclip.OpenReader(out, dir)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			n, err := r.Node("/data/last.conf")
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, n.Remote.ULength)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			start := r.Inflated()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := readNodeAt(r, n, buf, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(r.Inflated()-start)/float64(b.N), "inflated-B/op")
			b.ReportMetric(float64(fi.Size()), "archive-B")
		})
	}
}
