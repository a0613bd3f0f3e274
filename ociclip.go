// Package ociclip turns a local OCI image layout (as written by
// `skopeo copy docker://IMG oci:DIR:TAG`, umoci or buildah) into
// beam-cloud/clip v2 metadata: a .clip file listing every file of the merged
// image with the layer and offset of its bytes in that layer's uncompressed
// tar stream, so that clip's FUSE filesystem can serve the image lazily.
//
// It reads index.json, the manifest, the config and the layer blobs straight
// from disk, verifying every blob's size and digest, indexes every layer in
// one streaming pass (layers concurrently), checks each layer's DiffID
// against the config, merges the layers with OCI whiteout semantics and
// writes the archive atomically and reproducibly.
package ociclip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// ErrDiffIDMismatch: a layer's uncompressed digest differs from the
// config's rootfs.diff_ids entry.
var ErrDiffIDMismatch = errors.New("layer DiffID does not match the config")

// ErrOptions: the options are incomplete or contradictory.
var ErrOptions = errors.New("invalid options")

// Progress reports indexing progress. It has the same fields, in the same
// order and of the same types, as clip's OCIIndexProgress, so an image
// service converts with clip.OCIIndexProgress(p).
type Progress struct {
	LayerIndex   int    // layer being processed (1-based, manifest order)
	TotalLayers  int    // number of layers
	LayerDigest  string // compressed digest of the layer
	Stage        string // "starting" or "completed"
	FilesIndexed int    // tar entries indexed so far, over all layers ("completed" only)
	Message      string // human-readable
}

// Options configures CreateFromOCILayout.
type Options struct {
	// Source names the image with skopeo's transport syntax:
	// "oci:DIR[:REF]", "oci-archive:FILE[:REF]", "docker-archive:FILE[:REF]",
	// "dir:DIR" or a plain layout directory. When empty, LayoutPath is used.
	Source string
	// LayoutPath is the OCI image layout directory (when Source is empty).
	LayoutPath string
	// LayoutRef selects the image: a ref name (the
	// org.opencontainers.image.ref.name annotation, e.g. "24.04"), a digest
	// ("sha256:..." or "@sha256:..."), or empty when the layout holds one image.
	LayoutRef string
	// StorageImageRef is the registry reference a mount fetches layers from
	// (e.g. "docker.io/library/ubuntu:24.04"). Empty: the archive records no
	// registry and cannot be mounted from one.
	StorageImageRef string
	// OutputPath is the .clip file to write (atomically).
	OutputPath string
	// CheckpointMiB is the spacing of clip's gzip checkpoints (default 2).
	CheckpointMiB int
	// SpanBytes is the spacing, in uncompressed bytes, of ociclip's resumable
	// gzip checkpoints stored in the extension section (0: 4 MiB). Negative:
	// write no extension section.
	SpanBytes int64
	// Platform selects from a multi-platform index (default linux/GOARCH).
	Platform *v1.Platform
	// ProgressChan receives progress; sends block (as clip's do) but give
	// up when ctx is done. It is never closed.
	ProgressChan chan<- Progress
	// Concurrency bounds how many layers are indexed at once (default GOMAXPROCS).
	Concurrency int
	// Limits bound what hostile input can make ociclip do.
	Limits Limits
	// ImageName is recorded as ImageMetadata.Name; default StorageImageRef,
	// else "oci:LayoutPath[:LayoutRef]".
	ImageName string
}

// Limits bound resource use on hostile input; zero values mean the defaults.
type Limits struct {
	MaxJSONBytes         int64 // index.json, manifest, config (default 8 MiB)
	MaxIndexDepth        int   // nested image indexes (default 8)
	MaxEntries           int   // tar entries per layer (default 10 million)
	MaxPathLen           int   // bytes in an entry path (default 4096)
	MaxUncompressedBytes int64 // per layer (default 1 TiB)
}

// Result summarises an indexing run.
type Result struct {
	OutputPath        string
	ManifestDigest    string
	RefName           string
	Layers            int
	Nodes             int // nodes in the archive, root included
	Files             int
	Dirs              int
	Symlinks          int
	HardLinks         int
	Whiteouts         int
	SynthesizedDirs   int
	SkippedDevices    int
	SkippedFIFOs      int
	CompressedBytes   int64
	UncompressedBytes int64
	Duration          time.Duration
	StorageRef        archive.StorageRef
	Warnings          []string
}

// CreateFromOCILayout indexes the image selected from a local OCI layout and
// writes a clip v2 metadata archive to opts.OutputPath. On any failure the
// output path is left untouched.
func CreateFromOCILayout(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	src, err := source(opts)
	if err != nil {
		return nil, err
	}
	if opts.OutputPath == "" {
		return nil, fmt.Errorf("%w: OutputPath is empty", ErrOptions)
	}
	if opts.CheckpointMiB < 0 {
		return nil, fmt.Errorf("%w: CheckpointMiB %d is negative", ErrOptions, opts.CheckpointMiB)
	}
	if opts.CheckpointMiB == 0 {
		opts.CheckpointMiB = 2
	}
	res := &Result{OutputPath: opts.OutputPath}

	sref, warn, err := archive.ParseStorageRef(opts.StorageImageRef)
	if err != nil {
		return nil, err
	}
	if warn != "" {
		res.Warnings = append(res.Warnings, warn)
	}
	if opts.StorageImageRef == "" {
		res.Warnings = append(res.Warnings, "no storage reference given: the archive records no registry, so clip cannot mount it from one (use --storage-ref / StorageImageRef)")
	}

	layout, err := ociread.OpenSource(src, ociread.OpenOptions{Limits: ociread.Limits{
		MaxJSONBytes: opts.Limits.MaxJSONBytes, MaxIndexDepth: opts.Limits.MaxIndexDepth,
	}})
	if err != nil {
		return nil, err
	}
	defer layout.Close()
	img, err := layout.Resolve(ctx, ociread.Select{Ref: src.Ref, Platform: opts.Platform})
	if err != nil {
		return nil, err
	}
	res.ManifestDigest = img.ManifestDescriptor.Digest.String()
	res.RefName = img.RefName
	res.Layers = len(img.Layers)

	results, err := indexLayers(ctx, layout, img, opts)
	if err != nil {
		return nil, err
	}

	entries := make([]archive.LayerEntries, len(results))
	for i, r := range results {
		entries[i] = archive.LayerEntries{Digest: img.Layers[i].Digest.String(), Entries: r.Entries}
		res.CompressedBytes += r.CompressedSize
		res.UncompressedBytes += r.UncompressedSize
	}
	var rootTime time.Time
	if img.Config.Created != nil {
		rootTime = *img.Config.Created
	}
	nodes, stats, err := archive.Merge(entries, rootTime)
	if err != nil {
		return nil, err
	}

	name := opts.ImageName
	if name == "" {
		name = opts.StorageImageRef
	}
	if name == "" {
		name = src.String()
	}
	info, err := archive.BuildStorageInfo(sref, archive.ImageInfo{
		Name:           name,
		ManifestDigest: res.ManifestDigest,
		Config:         img.Config,
		DockerVersion:  dockerVersion(img.RawConfig),
		Layers:         img.Layers,
	}, results)
	if err != nil {
		return nil, err
	}
	var ext *archive.Extension
	if opts.SpanBytes >= 0 {
		ext = archive.BuildExtension(img.Layers, results)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := archive.WriteFile(opts.OutputPath, nodes, info, ext); err != nil {
		return nil, err
	}

	res.StorageRef = sref
	res.Nodes = len(nodes)
	res.Files, res.Dirs, res.Symlinks = stats.Files, stats.Dirs, stats.Symlinks
	res.HardLinks, res.Whiteouts, res.SynthesizedDirs = stats.HardLinks, stats.Whiteouts, stats.SynthesizedDirs
	res.SkippedDevices, res.SkippedFIFOs = stats.SkippedDevices, stats.SkippedFIFOs
	if n := stats.SkippedDevices + stats.SkippedFIFOs; n > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d device node(s) and %d FIFO(s): clip v2 cannot describe them", stats.SkippedDevices, stats.SkippedFIFOs))
	}
	res.Duration = time.Since(start)
	return res, nil
}

// source returns the image source of the options: Source parsed, or
// LayoutPath with LayoutRef.
func source(opts Options) (ociread.Source, error) {
	if opts.Source == "" {
		if opts.LayoutPath == "" {
			return ociread.Source{}, fmt.Errorf("%w: neither Source nor LayoutPath is set", ErrOptions)
		}
		return ociread.Source{Transport: ociread.TransportOCI, Path: opts.LayoutPath, Ref: opts.LayoutRef}, nil
	}
	if opts.LayoutPath != "" {
		return ociread.Source{}, fmt.Errorf("%w: set Source or LayoutPath, not both", ErrOptions)
	}
	src, err := ociread.ParseSource(opts.Source)
	if err != nil {
		return ociread.Source{}, err
	}
	if opts.LayoutRef != "" {
		if src.Ref != "" && src.Ref != opts.LayoutRef {
			return ociread.Source{}, fmt.Errorf("%w: Source %q names ref %q and LayoutRef says %q", ErrOptions, opts.Source, src.Ref, opts.LayoutRef)
		}
		src.Ref = opts.LayoutRef
	}
	return src, nil
}

// indexLayers runs the per-layer pass over all layers, concurrently up to
// opts.Concurrency, and checks each DiffID against the config.
func indexLayers(parent context.Context, layout *ociread.Layout, img *ociread.Image, opts Options) ([]*tarindex.Result, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	n := len(img.Layers)
	results := make([]*tarindex.Result, n)
	errs := make([]error, n)
	workers := opts.Concurrency
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers > n {
		workers = n
	}
	span := opts.SpanBytes
	var (
		mu      sync.Mutex
		entries int
	)
	progress := func(p Progress) {
		if opts.ProgressChan == nil {
			return
		}
		select {
		case opts.ProgressChan <- p:
		case <-ctx.Done():
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				desc := img.Layers[i]
				d := desc.Digest.String()
				progress(Progress{LayerIndex: i + 1, TotalLayers: n, LayerDigest: d, Stage: "starting",
					Message: fmt.Sprintf("Processing layer %d/%d", i+1, n)})
				r, err := indexLayer(ctx, layout, desc, img.DiffIDs[i].String(), tarindex.Options{
					MediaType:     desc.MediaType,
					CheckpointMiB: opts.CheckpointMiB,
					SpanBytes:     span,
					Limits: tarindex.Limits{
						MaxEntries:           opts.Limits.MaxEntries,
						MaxPathLen:           opts.Limits.MaxPathLen,
						MaxUncompressedBytes: opts.Limits.MaxUncompressedBytes,
					},
				})
				if err != nil {
					errs[i] = fmt.Errorf("layer %d/%d %s: %w", i+1, n, d, err)
					cancel()
					continue
				}
				results[i] = r
				mu.Lock()
				entries += len(r.Entries)
				total := entries
				mu.Unlock()
				progress(Progress{LayerIndex: i + 1, TotalLayers: n, LayerDigest: d, Stage: "completed", FilesIndexed: total,
					Message: fmt.Sprintf("Completed layer %d/%d (%d entries total)", i+1, n, total)})
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case jobs <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, err
	}
	// The first failing layer in manifest order names the cause; a layer
	// that only saw the cancellation another one caused is not it.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for i, r := range results {
		if r == nil {
			return nil, fmt.Errorf("layer %d/%d %s: %w", i+1, n, img.Layers[i].Digest, context.Canceled)
		}
	}
	return results, nil
}

// indexLayer indexes one layer blob, verified against its descriptor, and
// checks its DiffID.
func indexLayer(ctx context.Context, layout *ociread.Layout, desc v1.Descriptor, diffID string, o tarindex.Options) (*tarindex.Result, error) {
	rc, err := layout.OpenBlob(desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := tarindex.Index(ctx, rc, o)
	if err != nil {
		return nil, err
	}
	if r.DiffID.String() != diffID {
		return nil, fmt.Errorf("%w: uncompressed sha256 is %s, config rootfs.diff_ids says %s", ErrDiffIDMismatch, r.DiffID, diffID)
	}
	return r, nil
}

// dockerVersion returns the config's "docker_version", which v1.Image lacks.
func dockerVersion(raw []byte) string {
	var c struct {
		DockerVersion string `json:"docker_version"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return c.DockerVersion
}
