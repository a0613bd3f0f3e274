package bench

import (
	"archive/tar"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/ociread"
)

// dataDir is the directory `make bench-data` writes, or "" when the
// benchmarks run on testdata and generated images only.
var dataDir = func() string {
	d := os.Getenv("OCICLIP_BENCH_DATA")
	switch d {
	case "none", "off", "0":
		return ""
	case "":
		d = "data"
	}
	if _, err := os.Stat(filepath.Join(d, "image", "index.json")); err != nil {
		return ""
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return ""
	}
	return abs
}()

// full reports whether bench/data is used (larger synthetic sizes too).
func full() bool { return dataDir != "" }

// tmpRoot holds the generated images; removed by TestMain.
var tmpRoot string

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

func tempDir(b testing.TB, name string) string {
	b.Helper()
	if tmpRoot == "" {
		d, err := os.MkdirTemp("", "ociclip-benchdata-*")
		if err != nil {
			b.Fatal(err)
		}
		tmpRoot = d
	}
	d := filepath.Join(tmpRoot, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// imageSet is one image in three layouts that differ only in the layer
// compression.
type imageSet struct {
	name   string
	ref    string
	layout map[string]string // "gzip", "zstd", "plain" -> layout directory
}

var compressions = []string{"gzip", "zstd", "plain"}

var (
	mainOnce sync.Once
	mainSet  *imageSet
	mainErr  error
)

// mainImage returns bench/data's multi-layer image, or a small generated
// one without bench/data.
func mainImage(b testing.TB) *imageSet {
	b.Helper()
	if full() {
		return &imageSet{name: "bench", ref: "bench", layout: map[string]string{
			"gzip":  filepath.Join(dataDir, "image"),
			"zstd":  filepath.Join(dataDir, "image-zstd"),
			"plain": filepath.Join(dataDir, "image-plain"),
		}}
	}
	mainOnce.Do(func() { mainSet, mainErr = generateImage(tempDir(b, "generated")) })
	if mainErr != nil {
		b.Fatal(mainErr)
	}
	return mainSet
}

// busyboxImage is the real umoci/skopeo layout shipped in testdata.
func busyboxImage() *imageSet {
	return &imageSet{name: "busybox", ref: "1.35", layout: map[string]string{
		"gzip":  "../testdata/busybox",
		"zstd":  "../testdata/busybox-zstd",
		"plain": "../testdata/busybox-plain",
	}}
}

// content returns n bytes that compress about as well as a mix of text and
// binaries (roughly 3:1 with gzip -6).
func content(r *rand.Rand, n int) []byte {
	words := []string{"the ", "lib", "usr/", "share/", "int ", "return ", "func ", "0x", "\n\t", "error ", "config ", "value ", "= ", "{\n", "}\n", "import ", "package "}
	b := make([]byte, 0, n)
	for len(b) < n {
		if r.IntN(25) == 0 {
			k := min(n-len(b), 4+r.IntN(36))
			for range k {
				b = append(b, byte(r.Uint32()))
			}
			continue
		}
		b = append(b, words[r.IntN(len(words))]...)
	}
	return b[:n]
}

var t0 = time.Unix(1700000000, 0)

// genLayer returns a layer of files under prefix: nfiles files whose sizes
// are drawn log-uniformly from [minSize, maxSize], one directory per 32
// files and a symlink per 16.
func genLayer(r *rand.Rand, prefix string, nfiles, minSize, maxSize int) testimage.Layer {
	var l testimage.Layer
	for i := range nfiles {
		dir := fmt.Sprintf("%s/d%03d", prefix, i/32)
		if i%32 == 0 {
			l.Entries = append(l.Entries, testimage.Entry{Name: dir + "/", Type: tar.TypeDir, Mode: 0o755, ModTime: t0})
		}
		size := minSize
		if maxSize > minSize {
			lo, hi := float64(minSize+1), float64(maxSize)
			size = int(lo * math.Pow(hi/lo, r.Float64()))
		}
		name := fmt.Sprintf("%s/f%05d", dir, i)
		l.Entries = append(l.Entries, testimage.Entry{Name: name, Body: content(r, size), Mode: 0o644, ModTime: t0})
		if i%16 == 15 {
			l.Entries = append(l.Entries, testimage.Entry{Name: name + ".link", Type: tar.TypeSymlink, Linkname: fmt.Sprintf("f%05d", i), ModTime: t0})
		}
	}
	return l
}

// generateImage writes a small three-layer image (about 10 MiB): a base of
// mid-sized files, a layer of many small files, and a top layer that
// replaces and whites out some of them; as gzip, zstd and plain layouts.
func generateImage(root string) (*imageSet, error) {
	r := rand.New(rand.NewPCG(1, 2))
	base := genLayer(r, "usr/lib", 200, 1<<10, 256<<10)
	small := genLayer(r, "usr/share", 1500, 64, 4<<10)
	top := genLayer(r, "app", 20, 256, 64<<10)
	for i := 0; i < 10; i++ {
		top.Entries = append(top.Entries, testimage.Entry{Name: fmt.Sprintf("usr/share/d%03d/.wh.f%05d", i, i*32+1), ModTime: t0})
	}
	set := &imageSet{name: "generated", ref: "bench", layout: map[string]string{}}
	for _, c := range compressions {
		tc := map[string]testimage.Compression{"gzip": testimage.Gzip, "zstd": testimage.Zstd, "plain": testimage.None}[c]
		layers := []testimage.Layer{base, small, top}
		for i := range layers {
			layers[i].Compression = tc
		}
		dir := filepath.Join(root, c)
		if _, err := testimage.Write(dir, testimage.Ref{Name: set.ref, Image: &testimage.Image{Layers: layers}}); err != nil {
			return nil, err
		}
		set.layout[c] = dir
	}
	return set, nil
}

// resolved is an image opened with ociread: its layer descriptors and blob
// paths.
type resolved struct {
	layout *ociread.Layout
	img    *ociread.Image
	paths  []string
	usize  int64 // uncompressed bytes of all layers (from a previous index or the plain sizes)
}

func resolve(b testing.TB, dir, ref string) *resolved {
	b.Helper()
	l, err := ociread.Open(dir, ociread.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	img, err := l.Resolve(context.Background(), ociread.Select{Ref: ref})
	if err != nil {
		b.Fatal(err)
	}
	res := &resolved{layout: l, img: img}
	for _, d := range img.Layers {
		p, err := l.BlobPath(d.Digest)
		if err != nil {
			b.Fatal(err)
		}
		res.paths = append(res.paths, p)
	}
	return res
}

// largestLayer returns the index of the layer with the largest blob.
func largestLayer(img *ociread.Image) int {
	best := 0
	for i, d := range img.Layers {
		if d.Size > img.Layers[best].Size {
			best = i
		}
	}
	return best
}

// plainSizes returns the uncompressed size of every layer of a set (the
// blob sizes of its plain layout, whose layers match by position).
func plainSizes(b testing.TB, set *imageSet) []int64 {
	b.Helper()
	r := resolve(b, set.layout["plain"], set.ref)
	defer r.layout.Close()
	var s []int64
	for _, d := range r.img.Layers {
		s = append(s, d.Size)
	}
	return s
}

func sum(s []int64) int64 {
	var t int64
	for _, x := range s {
		t += x
	}
	return t
}

// needTool returns the path of an external tool; without it the benchmark
// is skipped, unless CI=true (.ci/run installs the tools).
func needTool(b testing.TB, name string) string {
	b.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("tool %s is required with CI=true: %v", name, err)
		}
		b.Skipf("tool %s not installed", name)
	}
	return p
}

// memSampler samples the Go runtime's mapped and not released memory (heap,
// stacks, runtime structures: what the process holds of the OS beyond the
// binary) every millisecond and keeps the peak.
type memSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Uint64
	base uint64
}

var memMetrics = []string{"/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}

func readMem() uint64 {
	s := make([]metrics.Sample, len(memMetrics))
	for i, n := range memMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// startMem returns a sampler whose base is the memory held after a full GC
// that returned free memory to the OS.
func startMem() *memSampler {
	runtime.GC()
	debug.FreeOSMemory()
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{}), base: readMem()}
	go func() {
		defer close(m.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := readMem(); v > m.peak.Load() {
				m.peak.Store(v)
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// report stops the sampler and reports the peak above the base in MiB.
func (m *memSampler) report(b *testing.B) {
	close(m.stop)
	<-m.done
	if v := readMem(); v > m.peak.Load() {
		m.peak.Store(v)
	}
	peak := m.peak.Load()
	var d uint64
	if peak > m.base {
		d = peak - m.base
	}
	b.ReportMetric(float64(d)/(1<<20), "peak-MiB")
}

// descs returns the layer descriptors sorted by blob size, largest first
// (for listings).
func descs(img *ociread.Image) []v1.Descriptor {
	d := append([]v1.Descriptor(nil), img.Layers...)
	sort.Slice(d, func(i, j int) bool { return d[i].Size > d[j].Size })
	return d
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports the CPU time (user+system, all goroutines) per
// iteration as cpu-ms/op: on a shared machine it varies much less than the
// wall time, and it is what concurrent work costs.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{cpuTime()} }

func (c cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(cpuTime()-c.start)/1e6/float64(b.N), "cpu-ms/op")
}

func mib(n int64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") }
