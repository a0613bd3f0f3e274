package bench

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	kgzip "github.com/klauspost/compress/gzip"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/tarindex"
)

// layerBlob is the largest layer of an image set in one compression: its
// blob read into memory, its path, media type and uncompressed size.
type layerBlob struct {
	blob      []byte
	path      string
	mediaType string
	usize     int64
}

func loadLayer(b *testing.B, set *imageSet, comp string) *layerBlob {
	b.Helper()
	r := resolve(b, set.layout[comp], set.ref)
	defer r.layout.Close()
	i := largestLayer(resolve(b, set.layout["gzip"], set.ref).img)
	blob, err := os.ReadFile(r.paths[i])
	if err != nil {
		b.Fatal(err)
	}
	return &layerBlob{blob: blob, path: r.paths[i], mediaType: r.img.Layers[i].MediaType, usize: plainSizes(b, set)[i]}
}

// BenchmarkInflate decompresses the largest gzip layer of the image to
// io.Discard: the standard library against klauspost/compress, nothing else.
func BenchmarkInflate(b *testing.B) {
	l := loadLayer(b, mainImage(b), "gzip")
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(l.usize)
		b.ReportAllocs()
		for b.Loop() {
			zr, err := stdgzip.NewReader(bytes.NewReader(l.blob))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, zr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(l.usize)
		b.ReportAllocs()
		for b.Loop() {
			zr, err := kgzip.NewReader(bytes.NewReader(l.blob))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, zr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLayer is the full per-layer pass (tarindex.Index: inflate, tar
// walk, DiffID, checkpoints, chunk CRCs) over the largest layer of the image
// in each compression. "mem" reads the blob from memory; "file" reads it
// from the layout through ociread's verifying reader (size and sha256 of the
// compressed blob), as CreateFromOCILayout does.
func BenchmarkLayer(b *testing.B) {
	for _, set := range []*imageSet{mainImage(b), busyboxImage()} {
		for _, comp := range compressions {
			b.Run(set.name+"/"+comp, func(b *testing.B) {
				l := loadLayer(b, set, comp)
				b.Run("mem", func(b *testing.B) {
					b.SetBytes(l.usize)
					b.ReportAllocs()
					var entries int
					for b.Loop() {
						res, err := tarindex.Index(context.Background(), bytes.NewReader(l.blob), tarindex.Options{MediaType: l.mediaType})
						if err != nil {
							b.Fatal(err)
						}
						entries = len(res.Entries)
					}
					b.ReportMetric(float64(entries), "entries")
				})
				b.Run("file", func(b *testing.B) {
					r := resolve(b, set.layout[comp], set.ref)
					defer r.layout.Close()
					desc := r.img.Layers[largestLayer(resolve(b, set.layout["gzip"], set.ref).img)]
					b.SetBytes(l.usize)
					b.ReportAllocs()
					for b.Loop() {
						rc, err := r.layout.OpenBlob(desc)
						if err != nil {
							b.Fatal(err)
						}
						_, err = tarindex.Index(context.Background(), rc, tarindex.Options{MediaType: desc.MediaType})
						rc.Close()
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkTool runs `gzip -dc` and `zstd -dc` (output to /dev/null) on the
// blobs BenchmarkLayer indexes: the yardsticks, in the same run.
func BenchmarkTool(b *testing.B) {
	set := mainImage(b)
	for _, t := range []struct{ tool, comp string }{{"gzip", "gzip"}, {"zstd", "zstd"}} {
		b.Run(t.tool+"-dc", func(b *testing.B) {
			tool := needTool(b, t.tool)
			l := loadLayer(b, set, t.comp)
			b.SetBytes(l.usize)
			for b.Loop() {
				if out, err := exec.Command(tool, "-dc", l.path).CombinedOutput(); err != nil {
					// -dc writes to stdout: CombinedOutput discards it in memory.
					b.Fatalf("%s -dc: %v", t.tool, err)
				} else {
					_ = out
				}
			}
		})
	}
}

// indexImage runs CreateFromOCILayout and returns the result.
func indexImage(b *testing.B, opts ociclip.Options) *ociclip.Result {
	res, err := ociclip.CreateFromOCILayout(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkImage indexes a whole multi-layer image end to end
// (ociclip.CreateFromOCILayout: open, verify, index every layer, merge, write
// the archive) per compression; for gzip with 1, 2 and 4 layers indexed
// concurrently. MB/s counts uncompressed bytes.
func BenchmarkImage(b *testing.B) {
	for _, set := range []*imageSet{mainImage(b), busyboxImage()} {
		usize := sum(plainSizes(b, set))
		for _, comp := range compressions {
			jobs := []int{0}
			if comp == "gzip" && set.name != "busybox" {
				jobs = []int{1, 2, 4}
			}
			for _, j := range jobs {
				name := set.name + "/" + comp
				if j > 0 {
					name += fmt.Sprintf("/jobs=%d", j)
				}
				b.Run(name, func(b *testing.B) {
					out := filepath.Join(b.TempDir(), "out.clip")
					opts := ociclip.Options{LayoutPath: set.layout[comp], LayoutRef: set.ref, OutputPath: out,
						StorageImageRef: "registry.example/bench:1", Concurrency: j}
					b.SetBytes(usize)
					b.ReportAllocs()
					mem := startMem()
					var res *ociclip.Result
					for b.Loop() {
						res = indexImage(b, opts)
					}
					mem.report(b)
					b.ReportMetric(float64(res.Nodes), "nodes")
				})
			}
		}
	}
}

// BenchmarkClip is clip a2a14fb's own indexer (clip.CreateFromOCIImage) on
// the gzip image served by go-containerregistry's in-process registry on
// 127.0.0.1, next to ociclip on the same image from the layout on disk.
func BenchmarkClip(b *testing.B) {
	set := mainImage(b)
	usize := sum(plainSizes(b, set))
	b.Run("clip", func(b *testing.B) {
		if err := clip.SetLogLevel("error"); err != nil {
			b.Fatal(err)
		}
		b.Setenv("DOCKER_CONFIG", b.TempDir())
		reg := registrytest.Start(b)
		ref := reg.PushLayout(b, set.layout["gzip"], set.ref, "bench/image:1")
		out := filepath.Join(b.TempDir(), "clip.clip")
		b.SetBytes(usize)
		b.ReportAllocs()
		for b.Loop() {
			if err := clip.CreateFromOCIImage(context.Background(), clip.CreateFromOCIImageOptions{ImageRef: ref, OutputPath: out}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ociclip", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "out.clip")
		b.SetBytes(usize)
		b.ReportAllocs()
		for b.Loop() {
			indexImage(b, ociclip.Options{LayoutPath: set.layout["gzip"], LayoutRef: set.ref, OutputPath: out,
				StorageImageRef: "registry.example/bench:1"})
		}
	})
}

// BenchmarkFiles indexes one-layer gzip images of N small files (64 B to
// 4 KiB each) end to end: the cost per file of the tar walk, the merge and
// the archive writer. ns/file is the time per file.
func BenchmarkFiles(b *testing.B) {
	counts := []int{1000, 10000}
	if full() {
		counts = append(counts, 100000, 300000)
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(n), 3))
			dir := tempDir(b, fmt.Sprintf("files-%d", n))
			l := genLayer(r, "usr/share", n, 64, 4<<10)
			w, err := testimage.Write(dir, testimage.Ref{Name: "bench", Image: &testimage.Image{Layers: []testimage.Layer{l}}})
			if err != nil {
				b.Fatal(err)
			}
			usize := int64(len(w.Images["bench"].LayerTars[0]))
			w = nil
			out := filepath.Join(b.TempDir(), "out.clip")
			b.SetBytes(usize)
			b.ReportAllocs()
			mem := startMem()
			for b.Loop() {
				indexImage(b, ociclip.Options{LayoutPath: dir, LayoutRef: "bench", OutputPath: out})
			}
			mem.report(b)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/file")
		})
	}
}

// BenchmarkLayerSize indexes one-layer gzip images of the same number of
// files (256) and growing size, from the layout on disk, and reports the
// peak memory the Go runtime held above its idle level (peak-MiB): it must
// not grow with the layer size. With bench/data: the 64 MiB and 512 MiB
// layers written by umoci; without: generated 4 MiB and 32 MiB layers.
func BenchmarkLayerSize(b *testing.B) {
	type sized struct {
		mib int
		dir string
	}
	var sizes []sized
	if full() {
		for _, m := range []int{64, 512} {
			sizes = append(sizes, sized{m, filepath.Join(dataDir, fmt.Sprintf("size%d", m))})
		}
	} else {
		for _, m := range []int{4, 32} {
			sizes = append(sizes, sized{m, ""})
		}
	}
	for _, s := range sizes {
		b.Run(fmt.Sprintf("MiB=%d", s.mib), func(b *testing.B) {
			dir := s.dir
			if dir == "" {
				dir = tempDir(b, fmt.Sprintf("size%d", s.mib))
				r := rand.New(rand.NewPCG(uint64(s.mib), 5))
				size := s.mib << 20 / 256
				l := genLayer(r, "data", 256, size, size)
				if _, err := testimage.Write(dir, testimage.Ref{Name: "bench", Image: &testimage.Image{Layers: []testimage.Layer{l}}}); err != nil {
					b.Fatal(err)
				}
			}
			out := filepath.Join(b.TempDir(), "out.clip")
			b.SetBytes(int64(s.mib) << 20)
			b.ReportAllocs()
			mem := startMem()
			for b.Loop() {
				indexImage(b, ociclip.Options{LayoutPath: dir, LayoutRef: "bench", OutputPath: out})
			}
			mem.report(b)
		})
	}
}
