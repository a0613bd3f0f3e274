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
	"path"
	"path/filepath"
	"sync"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
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
					cpu := startCPU()
					for b.Loop() {
						res, err := tarindex.Index(context.Background(), bytes.NewReader(l.blob), tarindex.Options{MediaType: l.mediaType})
						if err != nil {
							b.Fatal(err)
						}
						entries = len(res.Entries)
					}
					cpu.report(b)
					b.ReportMetric(float64(entries), "entries")
				})
				b.Run("file", func(b *testing.B) {
					r := resolve(b, set.layout[comp], set.ref)
					defer r.layout.Close()
					desc := r.img.Layers[largestLayer(resolve(b, set.layout["gzip"], set.ref).img)]
					b.SetBytes(l.usize)
					b.ReportAllocs()
					cpu := startCPU()
					defer cpu.report(b)
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
					mem, cpu := startMem(), startCPU()
					var res *ociclip.Result
					for b.Loop() {
						res = indexImage(b, opts)
					}
					cpu.report(b)
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
		cpu := startCPU()
		defer cpu.report(b)
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
		cpu := startCPU()
		defer cpu.report(b)
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
			mem, cpu := startMem(), startCPU()
			for b.Loop() {
				indexImage(b, ociclip.Options{LayoutPath: dir, LayoutRef: "bench", OutputPath: out})
			}
			cpu.report(b)
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
			mem, cpu := startMem(), startCPU()
			for b.Loop() {
				indexImage(b, ociclip.Options{LayoutPath: dir, LayoutRef: "bench", OutputPath: out})
			}
			cpu.report(b)
			mem.report(b)
		})
	}
}

// archiveInput is a synthetic image of 100k+ entries over three layers,
// shaped like a distribution plus an application: what archive.Merge and
// the writer get from the layer passes.
type archiveInput struct {
	layers  []archive.LayerEntries
	descs   []v1.Descriptor
	results []*tarindex.Result
	entries int
}

var (
	archiveOnce sync.Once
	archiveData *archiveInput
)

func getArchiveInput() *archiveInput {
	archiveOnce.Do(func() { archiveData = makeArchiveInput() })
	return archiveData
}

func makeArchiveInput() *archiveInput {
	r := rand.New(rand.NewPCG(11, 13))
	in := &archiveInput{}
	layer := func(i int, es []tarindex.Entry, usize int64) {
		d := digest.FromString(fmt.Sprintf("layer %d", i))
		res := &tarindex.Result{Compression: layerz.Gzip, Entries: es, DiffID: digest.FromString(fmt.Sprintf("diff %d", i)),
			UncompressedSize: usize, CompressedSize: usize / 3, ChunkSize: layerz.ChunkSize}
		for off := int64(2 << 20); off < usize; off += 2 << 20 {
			res.GzipCheckpoints = append(res.GzipCheckpoints, tarindex.Checkpoint{COff: off / 3, UOff: off})
		}
		var wc layerz.WindowCompressor
		for off := int64(4 << 20); off < usize; off += 4 << 20 {
			res.ResumePoints = append(res.ResumePoints, layerz.ResumePoint{COff: off / 3, UOff: off, ZWindow: wc.Compress(content(r, 32<<10))})
		}
		for range (usize + layerz.ChunkSize - 1) / layerz.ChunkSize {
			res.ChunkCRCs = append(res.ChunkCRCs, r.Uint32())
		}
		in.layers = append(in.layers, archive.LayerEntries{Digest: d.String(), Entries: es})
		in.descs = append(in.descs, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: usize / 3})
		in.results = append(in.results, res)
		in.entries += len(es)
	}
	gen := func(prefix string, dirs, perDir int, off *int64) []tarindex.Entry {
		var es []tarindex.Entry
		for d := range dirs {
			dir := fmt.Sprintf("%s/pkg%04d", prefix, d)
			es = append(es, tarindex.Entry{Path: dir, Kind: tarindex.KindDir, Mode: 0o755, ModTime: t0})
			for f := range perDir {
				p := fmt.Sprintf("%s/module_%02d.py", dir, f)
				if f%10 == 9 {
					es = append(es, tarindex.Entry{Path: p, Kind: tarindex.KindSymlink, Mode: 0o777, Linkname: "module_00.py", ModTime: t0})
					continue
				}
				size := int64(r.IntN(64 << 10))
				*off += 512
				es = append(es, tarindex.Entry{Path: p, Kind: tarindex.KindFile, Mode: 0o644, Size: size, Offset: *off, ModTime: t0})
				*off += (size + 511) &^ 511
			}
		}
		return es
	}
	var off int64
	base := gen("/usr/lib/python3/site-packages", 5000, 20, &off) // 105k entries
	layer(1, base, off+1024)
	off = 0
	app := gen("/opt/app/lib", 500, 20, &off) // 10.5k entries
	for i := range 2000 {                     // updates and whiteouts of the base
		p := fmt.Sprintf("/usr/lib/python3/site-packages/pkg%04d/module_%02d.py", i, i%9)
		if i%4 == 0 {
			app = append(app, tarindex.Entry{Path: path.Dir(p) + "/.wh." + path.Base(p), Kind: tarindex.KindFile, ModTime: t0})
			continue
		}
		off += 512
		app = append(app, tarindex.Entry{Path: p, Kind: tarindex.KindFile, Mode: 0o644, Size: 100, Offset: off, ModTime: t0})
		off += 512
	}
	layer(2, app, off+1024)
	off = 0
	layer(3, gen("/etc/app", 5, 10, &off), off+1024)
	return in
}

// BenchmarkArchive is the archive writer on an image of 118k entries
// (107k nodes): archive.Merge, archive.Encode (storage info and extension
// included, to io.Discard), and the two with archive.WriteFile as
// CreateFromOCILayout does them. MB/s counts the archive bytes.
func BenchmarkArchive(b *testing.B) {
	in := getArchiveInput()
	rootTime := t0
	build := func(b *testing.B) ([]*common.ClipNode, *common.OCIStorageInfo, *archive.Extension) {
		nodes, _, err := archive.Merge(in.layers, rootTime)
		if err != nil {
			b.Fatal(err)
		}
		info, err := archive.BuildStorageInfo(archive.StorageRef{RegistryURL: "registry.example", Repository: "bench", Reference: "1"},
			archive.ImageInfo{Name: "registry.example/bench:1", Layers: in.descs}, in.results)
		if err != nil {
			b.Fatal(err)
		}
		return nodes, info, archive.BuildExtension(in.descs, in.results)
	}
	nodes, info, ext := build(b)
	var cw countWriter
	if err := archive.Encode(&cw, nodes, info, ext); err != nil {
		b.Fatal(err)
	}
	size := cw.n
	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := archive.Merge(in.layers, rootTime); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(nodes)), "nodes")
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if err := archive.Encode(io.Discard, nodes, info, ext); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("merge+writefile", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "out.clip")
		b.SetBytes(size)
		b.ReportAllocs()
		mem := startMem()
		for b.Loop() {
			nodes, info, ext := build(b)
			if err := archive.WriteFile(out, nodes, info, ext); err != nil {
				b.Fatal(err)
			}
		}
		mem.report(b)
	})
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
