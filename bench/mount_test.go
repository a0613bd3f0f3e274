package bench

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/internal/fusetest"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testenv"
	"github.com/ociclip/ociclip/spans"
)

// traceFile lists, in order, the files python3.11 opened for
// `python3 -c "import json, email, http.client"` (strace -f -e
// trace=openat, found and not ENOENT, directories dropped by the
// benchmark): a container start on an image with Python.
const traceFile = "trace-python3.txt"

// BenchmarkMount compares mounts of ociclip's archive of the main image,
// served by the loopback registry (honouring Range, counting the bytes it
// sends), with clip's filesystem over two storages: ociclip's
// (clipstorage: spans fetched through the index) and clip's own
// (clip.MountArchive on the same archive and registry). Each scenario runs
// on a fresh mount with empty caches:
//
//   - small: the first read of one small file near the end of the largest
//     gzip layer;
//   - trace: a container-start trace (traceFile, or 100 files of the
//     generated image) read in order;
//   - walk: every file of the image read in walk order.
//
// Metrics: wall-s (seconds for the scenario), fetched-MiB (blob bytes the
// registry sent), peak-MiB (Go memory above the start: with the registry's
// blobs in memory, the GC lets garbage grow to their size), live-MiB (the
// peak of the live heap after each GC above the start: what the storage
// keeps), and for ociclip spans (fetched) and inflated-MiB.
func BenchmarkMount(b *testing.B) {
	if err := clipstorage.CheckFUSE(); err != nil {
		testenv.Missing(b, "%v", err)
	}
	if err := clip.SetLogLevel("error"); err != nil {
		b.Fatal(err)
	}
	b.Setenv("DOCKER_CONFIG", b.TempDir())
	set := mainImage(b)
	reg := registrytest.StartWith(b, registrytest.Options{Range: true})
	ref := reg.PushLayout(b, set.layout["gzip"], set.ref, "bench/mount:1")
	out := filepath.Join(b.TempDir(), "mount.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: set.layout["gzip"], LayoutRef: set.ref, StorageImageRef: ref, OutputPath: out,
	}); err != nil {
		b.Fatal(err)
	}
	a, err := archive.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	small, largest := smallFileNearEnd(a)
	trace := traceFiles(a)
	b.Logf("small: %s (%d bytes at %d of layer %s, %s); trace: %d files", small.Path, small.Remote.ULength, small.Remote.UOffset, largest.Digest, mib(largest.Size)+" MiB compressed", len(trace))
	scenarios := []struct {
		name string
		run  func(b *testing.B, mnt string)
	}{
		{"small", func(b *testing.B, mnt string) { readFiles(b, mnt, []string{small.Path}) }},
		{"trace", func(b *testing.B, mnt string) { readFiles(b, mnt, trace) }},
		{"walk", func(b *testing.B, mnt string) { walkAll(b, mnt) }},
	}
	for _, sc := range scenarios {
		for _, storage := range []string{"ociclip", "clip"} {
			b.Run(sc.name+"/"+storage, func(b *testing.B) {
				for b.Loop() {
					var mnt string
					var stop func()
					var stats func() spans.Stats
					if storage == "ociclip" {
						mnt, stats, stop = mountOciclip(b, out, ref)
					} else {
						mnt, stop = mountClipStorage(b, out)
					}
					mem := startMem()
					live := startLive()
					before := reg.BlobBytes("")
					start := time.Now()
					sc.run(b, mnt)
					wall := time.Since(start)
					fetched := reg.BlobBytes("") - before
					mem.report(b)
					live.report(b)
					if stats != nil {
						st := stats()
						b.ReportMetric(float64(st.Misses), "spans")
						b.ReportMetric(float64(st.Inflated)/(1<<20), "inflated-MiB")
					}
					stop()
					b.ReportMetric(wall.Seconds(), "wall-s")
					b.ReportMetric(float64(fetched)/(1<<20), "fetched-MiB")
				}
			})
		}
	}
}

// smallFileNearEnd returns the last file of at most 16 KiB in the largest
// gzip layer (by offset), and that layer.
func smallFileNearEnd(a *archive.Archive) (*common.ClipNode, archive.LayerExtension) {
	var largest archive.LayerExtension
	for _, l := range a.Extension.Layers {
		if l.Compression == "gzip" && l.Size > largest.Size {
			largest = l
		}
	}
	var best *common.ClipNode
	for _, n := range a.Nodes {
		if n.NodeType == common.FileNode && n.Remote != nil && n.Remote.LayerDigest == largest.Digest &&
			n.Remote.ULength > 0 && n.Remote.ULength <= 16<<10 && (best == nil || n.Remote.UOffset > best.Remote.UOffset) {
			best = n
		}
	}
	return best, largest
}

// traceFiles returns the regular files of traceFile that the archive has,
// or, when it has fewer than 50 of them (the generated image), 100 files
// spread over the image in path order.
func traceFiles(a *archive.Archive) []string {
	files := map[string]bool{}
	var all []string
	for _, n := range a.Nodes {
		if n.NodeType == common.FileNode && n.Remote != nil && n.Remote.ULength > 0 {
			files[n.Path] = true
			all = append(all, n.Path)
		}
	}
	var out []string
	if f, err := os.Open(traceFile); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p := strings.TrimSpace(sc.Text()); files[p] {
				out = append(out, p)
			}
		}
		f.Close()
	}
	if len(out) >= 50 {
		return out
	}
	sort.Strings(all)
	out = out[:0]
	for i := 0; i < 100 && len(all) > 0; i++ {
		out = append(out, all[i*len(all)/100])
	}
	return out
}

// readFile reads a file to its end through buf (so that the reading side
// allocates nothing per file and peak-MiB is the storage's).
func readFile(p string, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
	return err
}

func readFiles(b *testing.B, mnt string, paths []string) {
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		if err := readFile(filepath.Join(mnt, p), buf); err != nil {
			b.Fatal(err)
		}
	}
}

func walkAll(b *testing.B, mnt string) {
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return readFile(p, buf)
	})
	if err != nil {
		b.Fatal(err)
	}
}

type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// mountOciclip mounts the archive with clipstorage over the registry.
func mountOciclip(b *testing.B, out, ref string) (string, func() spans.Stats, func()) {
	src, err := blobs.NewRegistry(ref, blobs.RegistryOptions{Keychain: anonymous{}, Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	s, err := clipstorage.Open(out, src, clipstorage.Options{Spans: spans.Options{Logf: b.Logf}})
	if err != nil {
		b.Fatal(err)
	}
	mnt := filepath.Join(b.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	m, err := clipstorage.MountAt(s, mnt)
	if err != nil {
		b.Fatal(err)
	}
	fusetest.DisablePoll(b, mnt)
	return mnt, s.Stats, func() {
		if err := m.Unmount(30 * time.Second); err != nil {
			b.Error(err)
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	}
}

// mountClipStorage mounts the archive with clip.MountArchive (clip's own
// storage, fetching from the registry the archive names), with an empty
// cache directory.
func mountClipStorage(b *testing.B, out string) (string, func()) {
	mnt := filepath.Join(b.TempDir(), "mnt")
	cache := b.TempDir()
	start, serverErr, server, err := clip.MountArchive(clip.MountOptions{ArchivePath: out, MountPoint: mnt, CachePath: cache})
	if err != nil {
		b.Fatal(err)
	}
	if err := start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !fusetest.IsMounted(mnt) {
		if time.Now().After(deadline) {
			b.Fatalf("%s not mounted after 10s", mnt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fusetest.DisablePoll(b, mnt)
	return mnt, func() {
		if err := server.Unmount(); err != nil {
			b.Error(err)
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
		select {
		case <-serverErr:
		case <-time.After(30 * time.Second):
			b.Errorf("clip's FUSE server for %s did not stop", mnt)
		}
	}
}

// liveSampler keeps the peak of the live heap (as of the last GC) above
// its value at the start.
type liveSampler struct {
	stop, done chan struct{}
	base, peak uint64
}

func readLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startLive() *liveSampler {
	runtime.GC()
	l := &liveSampler{stop: make(chan struct{}), done: make(chan struct{}), base: readLive()}
	go func() {
		defer close(l.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			l.peak = max(l.peak, readLive())
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
		}
	}()
	return l
}

func (l *liveSampler) report(b *testing.B) {
	close(l.stop)
	<-l.done
	var d uint64
	if l.peak > l.base {
		d = l.peak - l.base
	}
	b.ReportMetric(float64(d)/(1<<20), "live-MiB")
}
