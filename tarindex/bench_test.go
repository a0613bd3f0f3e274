package tarindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchLayerSize is the uncompressed size of the benchmark layer.
const benchLayerSize = 64 << 20

// benchLayer is a realistic layer: a tar of files from /usr/share and
// /usr/lib of this machine, about 64 MiB, and its compressed forms (gzip by
// Go's compress/gzip at the default level, as docker and containerd write,
// and zstd). It is built once per test binary run.
type benchLayer struct {
	tar, gzip, zstd []byte
	gzipPath        string // the gzip blob on disk, for gzip -dc
}

var (
	benchOnce sync.Once
	benchData *benchLayer
	benchErr  error
)

func getBenchLayer(b *testing.B) *benchLayer {
	b.Helper()
	benchOnce.Do(func() { benchData, benchErr = makeBenchLayer() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchData
}

func makeBenchLayer() (*benchLayer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Half from /usr/share (many small text files), half from /usr/lib
	// (libraries, modules), files up to 4 MiB: a mix like a distribution
	// base layer.
	for i, root := range []string{"/usr/share", "/usr/lib"} {
		quota := (i + 1) * benchLayerSize / 2
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if buf.Len() >= quota {
				return filepath.SkipAll
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			var link string
			switch {
			case info.Mode().IsRegular():
				if info.Size() > 4<<20 {
					return nil
				}
			case info.Mode()&fs.ModeSymlink != 0:
				if link, err = os.Readlink(p); err != nil {
					return nil
				}
			case info.IsDir():
			default:
				return nil
			}
			h, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return nil
			}
			h.Name = p[1:]
			var content []byte
			if info.Mode().IsRegular() {
				if content, err = os.ReadFile(p); err != nil || int64(len(content)) != h.Size {
					return nil
				}
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = tw.Write(content)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	l := &benchLayer{tar: buf.Bytes()}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz) // what docker and containerd write
	w.Write(l.tar)
	w.Close()
	l.gzip = gz.Bytes()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2))
	l.zstd = enc.EncodeAll(l.tar, nil)
	enc.Close()
	f, err := os.CreateTemp("", "tarindex-bench-*.tar.gz")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Write(l.gzip); err != nil {
		return nil, err
	}
	l.gzipPath = f.Name()
	return l, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchData != nil && benchData.gzipPath != "" {
		os.Remove(benchData.gzipPath)
	}
	os.Exit(code)
}

func benchIndex(b *testing.B, blob []byte, usize int, opts Options) {
	b.SetBytes(int64(usize))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Index(context.Background(), bytes.NewReader(blob), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexGzip indexes the gzip layer: the default pipeline (inflate,
// hash and walk on three goroutines) with and without resume points, the
// two-goroutine variant (hash and walk together) and the single-goroutine
// one for comparison.
func BenchmarkIndexGzip(b *testing.B) {
	l := getBenchLayer(b)
	b.Run("pipeline/resume", func(b *testing.B) { benchIndex(b, l.gzip, len(l.tar), Options{}) })
	b.Run("two/resume", func(b *testing.B) { benchIndex(b, l.gzip, len(l.tar), Options{mode: modeAsync}) })
	b.Run("pipeline/noresume", func(b *testing.B) { benchIndex(b, l.gzip, len(l.tar), Options{SpanBytes: -1}) })
	b.Run("single/resume", func(b *testing.B) { benchIndex(b, l.gzip, len(l.tar), Options{mode: modeSync}) })
	b.Run("single/noresume", func(b *testing.B) { benchIndex(b, l.gzip, len(l.tar), Options{mode: modeSync, SpanBytes: -1}) })
}

// BenchmarkIndexZstd indexes the zstd layer.
func BenchmarkIndexZstd(b *testing.B) {
	l := getBenchLayer(b)
	b.Run("pipeline", func(b *testing.B) { benchIndex(b, l.zstd, len(l.tar), Options{}) })
	b.Run("two", func(b *testing.B) { benchIndex(b, l.zstd, len(l.tar), Options{mode: modeAsync}) })
	b.Run("single", func(b *testing.B) { benchIndex(b, l.zstd, len(l.tar), Options{mode: modeSync}) })
}

// BenchmarkIndexPlain indexes the uncompressed layer.
func BenchmarkIndexPlain(b *testing.B) {
	l := getBenchLayer(b)
	b.Run("pipeline", func(b *testing.B) { benchIndex(b, l.tar, len(l.tar), Options{}) })
	b.Run("two", func(b *testing.B) { benchIndex(b, l.tar, len(l.tar), Options{mode: modeAsync}) })
	b.Run("single", func(b *testing.B) { benchIndex(b, l.tar, len(l.tar), Options{mode: modeSync}) })
}

// BenchmarkInflateStdlib is compress/gzip alone on the gzip layer.
func BenchmarkInflateStdlib(b *testing.B) {
	l := getBenchLayer(b)
	b.SetBytes(int64(len(l.tar)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		zr, err := gzip.NewReader(bytes.NewReader(l.gzip))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, zr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInflateKlauspost is klauspost/compress/gzip alone on the gzip layer.
func BenchmarkInflateKlauspost(b *testing.B) {
	l := getBenchLayer(b)
	b.SetBytes(int64(len(l.tar)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		zr, err := kgzip.NewReader(bytes.NewReader(l.gzip))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, zr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256 is the hash alone over the uncompressed layer.
func BenchmarkSHA256(b *testing.B) {
	l := getBenchLayer(b)
	b.SetBytes(int64(len(l.tar)))
	for i := 0; i < b.N; i++ {
		sha256.Sum256(l.tar)
	}
}

// BenchmarkGzipDC runs GNU `gzip -dc` on the same blob (from a file, output
// to /dev/null), the yardstick of the indexer.
func BenchmarkGzipDC(b *testing.B) {
	l := getBenchLayer(b)
	gz := needTool(b, "gzip")
	b.SetBytes(int64(len(l.tar)))
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(gz, "-dc", l.gzipPath)
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
