// Command benchreport is `make bench`: it times the ociclip CLI against
// `gzip -dc` and `zstd -dc` decompressing the same layer blobs, in the same
// run and interleaved, and prints the ratios, the peak memory (maximum
// resident set size of the ociclip process, as GNU time -v reports it),
// throughput with 1, 2 and 4 concurrent layers, memory vs layer size, and
// clip a2a14fb's own clip.CreateFromOCIImage on the same image served by
// go-containerregistry's in-process registry on 127.0.0.1, and the layer
// cache through an object store (gofakes3 on 127.0.0.1): cold and warm.
//
//	go run ./bench/cmd/benchreport -data bench/data -ociclip bin/ociclip [-runs 3]
//
// The images are those of bench/make-bench-data.sh. With -cpuprofile FILE it
// also indexes the gzip image once in-process under the CPU profiler.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
)

const ref = "bench"

var (
	dataDir    = flag.String("data", "bench/data", "directory written by make-bench-data.sh")
	ociclipBin = flag.String("ociclip", "bin/ociclip", "the ociclip binary to time")
	runs       = flag.Int("runs", 3, "runs of each measurement (medians and ranges are printed)")
	clipRuns   = flag.Int("clip-runs", 1, "runs of clip's CreateFromOCIImage (0: skip)")
	cpuProfile = flag.String("cpuprofile", "", "also index the gzip image once in-process with this CPU profile")
	only       = flag.String("only", "", "run one section only: \"cache\" (the layer cache through an object store)")
)

func main() {
	log.SetFlags(0)
	flag.Parse()
	if _, err := os.Stat(filepath.Join(*dataDir, "image", "index.json")); err != nil {
		log.Fatalf("no benchmark data in %s: run `make bench-data` first", *dataDir)
	}
	tmp, err := os.MkdirTemp("", "benchreport-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	r := &reporter{tmp: tmp}
	if *only == "cache" {
		if err := r.cache(filepath.Join(*dataDir, "image")); err != nil {
			log.Fatal(err)
		}
		return
	}

	fmt.Printf("ociclip benchmark report — %s, GOMAXPROCS %d, %s, load average %s\n", time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), cpuModel(), loadavg())
	fmt.Printf("CPU available to this process: %.2f cores (a CPU-bound loop on GOMAXPROCS goroutines vs on one; a machine shared with other work gives less than GOMAXPROCS)\n", parallelism())
	fmt.Printf("%d runs per measurement, interleaved; median [min–max]. Blobs are in the page cache (each measurement runs once before timing).\n", *runs)
	fmt.Println("ratio = ociclip wall time / tool wall time over the same blobs (lower is better); RSS = max resident set size of the ociclip process.")
	fmt.Println()

	// 1. Whole multi-layer image, and single large layers, next to the tools.
	fmt.Println("## ociclip index vs decompressing the same layer blobs")
	fmt.Println()
	fmt.Println("| image | layers | compressed | uncompressed | tool | tool time | ociclip time | ratio | target | ociclip MB/s | ociclip RSS |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	var gzipImage measurement
	for _, c := range []struct{ dir, tool, target string }{
		{"image", "gzip", "≤ 0.80"},
		{"image-zstd", "zstd", ""},
		{"image-plain", "", ""},
		{"size512", "gzip", "≤ 1.00"},
		{"size512-zstd", "zstd", "≤ 1.25"},
	} {
		m, ok := r.compare(c.dir, c.tool, 0)
		if !ok {
			continue
		}
		if c.dir == "image" {
			gzipImage = m
		}
		tool, tt, ratio := "—", "—", "—"
		if c.tool != "" {
			tool = c.tool + " -dc"
			tt = m.tool.String()
			ratio = ratioString(m.ociclip.walls, m.tool.walls)
		}
		target := c.target
		if target == "" {
			target = "—"
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %.0f | %s |\n", c.dir, m.layers, mib(m.csize), mib(m.usize),
			tool, tt, m.ociclip.String(), ratio, target, float64(m.usize)/1e6/median(m.ociclip.walls), m.ociclip.rssString())
	}
	fmt.Println()
	fmt.Println("The single-layer rows (size512: one 512 MiB layer) compare throughput on one layer: ociclip's pipeline spreads it")
	fmt.Println("over four goroutines (read-ahead + blob sha256 | inflate | sha256 + CRC-32C | tar walk), the tools use one thread. The multi-layer rows")
	fmt.Println("also index up to GOMAXPROCS layers at once; the tool times are the sum over the blobs, one after another.")
	fmt.Println()

	// 2. Concurrent layers.
	fmt.Println("## Concurrent layers (gzip image, --jobs N)")
	fmt.Println()
	fmt.Println("| jobs | wall time | MB/s (uncompressed) | RSS |")
	fmt.Println("|---|---|---|---|")
	for _, j := range []int{1, 2, 4} {
		m, ok := r.compare("image", "", j)
		if !ok {
			break
		}
		fmt.Printf("| %d | %s | %.0f | %s |\n", j, m.ociclip.String(), float64(m.usize)/1e6/median(m.ociclip.walls), m.ociclip.rssString())
	}
	fmt.Println()

	// 3. Memory vs layer size.
	fmt.Println("## Peak memory vs layer size (one gzip layer of 256 files)")
	fmt.Println()
	fmt.Println("| layer (uncompressed) | blob | wall time | RSS |")
	fmt.Println("|---|---|---|---|")
	var imageRSS []int64
	for _, d := range []string{"size64", "size512", "image"} {
		m, ok := r.compare(d, "", 1)
		if !ok {
			continue
		}
		label := mib(m.usize)
		if d == "image" {
			label += " (the whole image, --jobs 1)"
			imageRSS = m.ociclip.rss
		}
		fmt.Printf("| %s | %s | %s | %s |\n", label, mib(m.csize), m.ociclip.String(), m.ociclip.rssString())
	}
	fmt.Println()
	if len(imageRSS) > 0 {
		// The budget: 64 MiB plus what the node list needs, taken
		// as the heap that holds the decoded archive (nodes and extension).
		need, err := heapOfArchive(filepath.Join(r.tmp, "out.clip"))
		if err != nil {
			log.Fatal(err)
		}
		budget := 64<<20 + need
		fmt.Printf("Memory budget for the whole image: 64 MiB + %.0f MiB (the heap that holds its decoded archive: nodes and extension) = %.0f MiB; ociclip's peak RSS: median %.0f MiB with --jobs 1, at most %.0f MiB in any run of the image above.\n\n",
			float64(need)/(1<<20), float64(budget)/(1<<20), float64(medianInt(imageRSS))/(1<<20), float64(max(slices.Max(imageRSS), slices.Max(gzipImage.ociclip.rss)))/(1<<20))
	}

	// 4. clip's own indexer on a loopback registry.
	if *clipRuns > 0 && gzipImage.layers > 0 {
		fmt.Println("## clip a2a14fb CreateFromOCIImage (in-process registry on 127.0.0.1) vs ociclip (layout on disk)")
		fmt.Println()
		walls, err := r.clip(filepath.Join(*dataDir, "image"))
		if err != nil {
			fmt.Printf("clip failed: %v\n\n", err)
		} else {
			var gz series
			gz.walls = gzipImage.tool.walls
			cl := series{walls: walls}
			fmt.Println("| indexer | wall time | vs gzip -dc | ociclip speedup |")
			fmt.Println("|---|---|---|---|")
			fmt.Printf("| clip CreateFromOCIImage | %s | %s | — |\n", cl.String(), ratioString(walls, gz.walls))
			fmt.Printf("| ociclip index | %s | %s | %.2f× |\n\n", gzipImage.ociclip.String(), ratioString(gzipImage.ociclip.walls, gz.walls), median(walls)/median(gzipImage.ociclip.walls))
		}
	}

	// 5. The layer cache through an object store.
	if err := r.cache(filepath.Join(*dataDir, "image")); err != nil {
		fmt.Printf("layer cache: %v\n\n", err)
	}

	fmt.Printf("At the end: load average %s, %.2f cores available.\n", loadavg(), parallelism())
	if *cpuProfile != "" {
		if err := r.profile(filepath.Join(*dataDir, "image"), *cpuProfile); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("CPU profile of one in-process index of the gzip image: %s (go tool pprof -top %s)\n", *cpuProfile, *cpuProfile)
	}
}

type reporter struct{ tmp string }

// series is the wall times (seconds) and peak RSS (bytes) of repeated runs.
type series struct {
	walls []float64
	rss   []int64
}

func (s series) String() string {
	if len(s.walls) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s [%.2f–%.2f]", median(s.walls), slices.Min(s.walls), slices.Max(s.walls))
}

func (s series) rssString() string {
	if len(s.rss) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB [%.0f–%.0f]", float64(medianInt(s.rss))/(1<<20), float64(slices.Min(s.rss))/(1<<20), float64(slices.Max(s.rss))/(1<<20))
}

type measurement struct {
	layers       int
	nodes        int
	csize, usize int64
	tool         series
	ociclip      series
}

// layers returns the layer blob paths and descriptors of the layout dir.
func layers(dir string) ([]string, []v1.Descriptor, error) {
	var idx v1.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, nil, err
	}
	if len(idx.Manifests) != 1 {
		return nil, nil, fmt.Errorf("%s: %d manifests, want 1", dir, len(idx.Manifests))
	}
	var m v1.Manifest
	if err := readJSON(blobPath(dir, idx.Manifests[0].Digest.Encoded()), &m); err != nil {
		return nil, nil, err
	}
	var paths []string
	for _, l := range m.Layers {
		paths = append(paths, blobPath(dir, l.Digest.Encoded()))
	}
	return paths, m.Layers, nil
}

func blobPath(dir, hex string) string { return filepath.Join(dir, "blobs", "sha256", hex) }

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// compare times `tool -dc` over every layer blob of the layout (sequentially,
// summed) and `ociclip index` of the whole image, interleaved, *runs times
// each after one untimed warm-up of both. jobs > 0 passes --jobs.
func (r *reporter) compare(name, tool string, jobs int) (measurement, bool) {
	dir := filepath.Join(*dataDir, name)
	paths, descs, err := layers(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return measurement{}, false
		}
		log.Fatal(err)
	}
	m := measurement{layers: len(paths)}
	for _, d := range descs {
		m.csize += d.Size
	}
	toolBin := ""
	if tool != "" {
		if toolBin, err = exec.LookPath(tool); err != nil {
			log.Printf("%s not installed: skipping the %s comparison", tool, name)
			toolBin = ""
		}
	}
	out := filepath.Join(r.tmp, "out.clip")
	args := []string{"index", "oci:" + dir + ":" + ref, "-o", out, "-q", "--storage-ref", "registry.example/bench:1"}
	if jobs > 0 {
		args = append(args, "--jobs", fmt.Sprint(jobs))
	}
	runTool := func() float64 {
		var total float64
		for _, p := range paths {
			w, _, err := run(toolBin, "-dc", p)
			if err != nil {
				log.Fatalf("%s -dc %s: %v", tool, p, err)
			}
			total += w
		}
		return total
	}
	runOciclip := func() (float64, int64) {
		w, rss, err := run(*ociclipBin, args...)
		if err != nil {
			log.Fatalf("%s %s: %v", *ociclipBin, strings.Join(args, " "), err)
		}
		return w, rss
	}
	// Warm-up: page cache, and the usize of the image.
	if toolBin != "" {
		runTool()
	}
	if m.nodes, m.usize, err = summary(args); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *runs; i++ {
		// Alternate which goes first, so that drifts in machine load
		// hit both alike.
		if i%2 == 1 {
			w, rss := runOciclip()
			m.ociclip.walls, m.ociclip.rss = append(m.ociclip.walls, w), append(m.ociclip.rss, rss)
		}
		if toolBin != "" {
			m.tool.walls = append(m.tool.walls, runTool())
		}
		if i%2 == 0 {
			w, rss := runOciclip()
			m.ociclip.walls, m.ociclip.rss = append(m.ociclip.walls, w), append(m.ociclip.rss, rss)
		}
	}
	return m, true
}

// summary runs `ociclip index --json` (untimed) and returns the nodes and
// the uncompressed size of all layers.
func summary(args []string) (nodes int, usize int64, err error) {
	a := append(slices.Clone(args), "--json")
	out, err := exec.Command(*ociclipBin, a...).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("ociclip %s: %w", strings.Join(a, " "), err)
	}
	var v struct {
		Nodes             int   `json:"nodes"`
		UncompressedBytes int64 `json:"uncompressedBytes"`
	}
	err = json.Unmarshal(out, &v)
	return v.Nodes, v.UncompressedBytes, err
}

// run runs a command with stdout to /dev/null and returns its wall time in
// seconds and its peak RSS in bytes (rusage ru_maxrss, what GNU time -v
// prints as "Maximum resident set size").
func run(bin string, args ...string) (float64, int64, error) {
	return runEnv(nil, bin, args...)
}

// runEnv is run with env added to the environment of the command.
func runEnv(env []string, bin string, args ...string) (float64, int64, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer devnull.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = devnull
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s", err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return wall, rss, nil
}

// clip pushes the layout into an in-process registry on 127.0.0.1 and times
// clip.CreateFromOCIImage from it (*clipRuns times after one warm-up).
func (r *reporter) clip(dir string) ([]float64, error) {
	if err := clip.SetLogLevel("error"); err != nil {
		return nil, err
	}
	// An anonymous registry: keep clip away from credential helpers.
	os.Setenv("DOCKER_CONFIG", filepath.Join(r.tmp, "docker"))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		return nil, fmt.Errorf("registry listens on %s, want 127.0.0.1", host)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	img, err := ii.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	imageRef := host + "/bench/image:1"
	nref, err := name.ParseReference(imageRef, name.StrictValidation)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(nref, img); err != nil {
		return nil, err
	}
	out := filepath.Join(r.tmp, "clip.clip")
	index := func() (float64, error) {
		start := time.Now()
		err := clip.CreateFromOCIImage(context.Background(), clip.CreateFromOCIImageOptions{ImageRef: imageRef, OutputPath: out})
		return time.Since(start).Seconds(), err
	}
	if _, err := index(); err != nil {
		return nil, err
	}
	var walls []float64
	for range *clipRuns {
		w, err := index()
		if err != nil {
			return nil, err
		}
		walls = append(walls, w)
	}
	return walls, nil
}

// profile indexes the layout once in-process under the CPU profiler.
func (r *reporter) profile(dir, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	_, err = ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{LayoutPath: dir, LayoutRef: ref, OutputPath: filepath.Join(r.tmp, "prof.clip")})
	pprof.StopCPUProfile()
	return err
}

// parallelism measures how many cores a CPU-bound loop gets: the time of
// one loop alone over the time of GOMAXPROCS copies, times GOMAXPROCS.
func parallelism() float64 {
	spin := func(n int) uint64 {
		x := uint64(1)
		for range n {
			x = x*6364136223846793005 + 1442695040888963407
		}
		return x
	}
	const n = 200_000_000
	var sink atomic.Uint64
	t := time.Now()
	sink.Add(spin(n))
	one := time.Since(t)
	p := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	t = time.Now()
	for range p {
		wg.Add(1)
		go func() { defer wg.Done(); sink.Add(spin(n)) }()
	}
	wg.Wait()
	return float64(p) * one.Seconds() / time.Since(t).Seconds()
}

func ratioString(a, b []float64) string {
	if len(a) == 0 || len(b) == 0 {
		return "—"
	}
	if len(a) != len(b) {
		// Not run in pairs: only the ratio of the medians means something.
		return fmt.Sprintf("%.2f", median(a)/median(b))
	}
	var rs []float64
	for i := range min(len(a), len(b)) {
		rs = append(rs, a[i]/b[i])
	}
	return fmt.Sprintf("%.2f [%.2f–%.2f]", median(a)/median(b), slices.Min(rs), slices.Max(rs))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianInt(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// heapOfArchive returns the heap bytes that hold the archive at path once
// decoded (archive.ReadFile: the node list and the extension).
func heapOfArchive(path string) (int64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a, err := archive.ReadFile(path)
	if err != nil {
		return 0, err
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(a)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc), nil
}
