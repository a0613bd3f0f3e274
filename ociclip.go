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
//
// With Options.CacheDir, the result of each layer's pass is kept in a
// layercache directory keyed by the layer digest and the options that shape
// it, so an image that shares base layers with one indexed before costs only
// its new layers (a cache hit does not read the layer blob at all).
//
// Progress is reported two ways: Options.ProgressChan carries per-layer
// start and completion events in clip's OCIIndexProgress shape, and
// Options.LayerProgress receives byte-level progress of every layer (for
// progress bars). Options.Logger receives structured log records.
package ociclip

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/layercache"
	"github.com/ociclip/ociclip/limits"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// ErrDiffIDMismatch: a layer's uncompressed digest differs from the
// config's rootfs.diff_ids entry.
var ErrDiffIDMismatch = errors.New("layer DiffID does not match the config")

// ErrOptions: the options are incomplete or contradictory.
var ErrOptions = errors.New("invalid options")

// Progress reports indexing progress. Its first six fields are clip
// a2a14fb's OCIIndexProgress (same names, order and types; Progress.Clip
// converts); the others are the byte-level fields of newer clip versions.
//
// Every layer gets a "starting" and then a "completed" event; the completed
// event of a layer taken from the cache has Message MessageCached.
type Progress struct {
	LayerIndex   int    // layer being processed (1-based, manifest order)
	TotalLayers  int    // number of layers
	LayerDigest  string // compressed digest of the layer
	Stage        string // StageStarting or StageCompleted
	FilesIndexed int    // tar entries indexed so far, over all layers ("completed" only)
	Message      string // human-readable; MessageCached for a layer taken from the cache

	// BytesProcessed is how many compressed bytes of the image's layers
	// were read so far, over all layers (a layer taken from the cache
	// counts whole once completed); BytesTotal is the sum of the layers'
	// descriptor sizes.
	BytesProcessed, BytesTotal int64
	// CompletedLayers counts the layers completed so far, this one included
	// in its "completed" event.
	CompletedLayers int
	// Source is where the layer's index came from ("completed" only):
	// SourceLocalLayout or SourceIndexCache.
	Source string
}

// Stages of Progress and LayerProgress events.
const (
	StageStarting  = "starting"  // the layer's turn begins (Progress: before the cache lookup; LayerProgress: after it)
	StageIndexing  = "indexing"  // LayerProgress only: bytes of the blob were read
	StageCompleted = "completed" // the layer is indexed (or was found in the cache)
)

// MessageCached is the Message of the "completed" Progress event of a layer
// whose result came from the cache.
const MessageCached = "cached"

// LayerProgress is byte-level progress of one layer, for progress bars. For
// each layer, Options.LayerProgress receives one StageStarting event, then
// StageIndexing events about every MiB of the blob read, then one
// StageCompleted event. For a layer found in the cache there are no
// StageIndexing events, and both other events have Cached set.
type LayerProgress struct {
	LayerIndex  int    // 1-based, manifest order
	TotalLayers int    // number of layers
	LayerDigest string // compressed digest of the layer
	Stage       string // StageStarting, StageIndexing or StageCompleted
	Cached      bool   // the result comes from the cache
	// CompressedRead is how many bytes of the blob were read (all of them
	// at StageCompleted, also for a cache hit); CompressedTotal is the
	// blob's size from its descriptor.
	CompressedRead, CompressedTotal int64
	UncompressedRead                int64 // uncompressed bytes walked so far
	Entries                         int   // tar entries of this layer so far
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
	// OutputPath is the .clip file to write (atomically; see
	// archive.WriteFile for what it may replace).
	OutputPath string
	// Output, when set, receives the archive instead of OutputPath (which
	// must then be empty): a stream such as stdout. The archive is written
	// only once everything else succeeded, but a failing write leaves a
	// partial stream, which OutputPath never does.
	Output io.Writer
	// CheckpointMiB is the spacing of clip's gzip checkpoints (default 2).
	CheckpointMiB int
	// SpanBytes is the spacing, in uncompressed bytes, of ociclip's resumable
	// gzip checkpoints stored in the extension section (0: 4 MiB). Negative:
	// none, and no random-access data at all: the extension section then
	// holds only the checksum of clip's sections.
	SpanBytes int64
	// SmallFileSpanBytes is the closer spacing of those checkpoints where a
	// layer holds many small files (0: 256 KiB; negative: none, every
	// SpanBytes only): see tarindex.Options.SmallFileSpanBytes. It makes the
	// first read of a small file through a lazy mount inflate about 8x less,
	// for about 12 KiB of archive per extra checkpoint.
	SmallFileSpanBytes int64
	// Platform selects from a multi-platform index (default linux/GOARCH).
	// When the selected image is a single manifest, a Platform that is set
	// must match its config (else ociread.ErrPlatformNotFound).
	Platform *v1.Platform
	// ProgressChan receives progress; sends block (as clip's do) but give
	// up when ctx is done. It is never closed.
	ProgressChan chan<- Progress
	// LayerProgress, when set, receives byte-level progress of every layer
	// (see LayerProgress). It is called from the goroutines indexing the
	// layers, concurrently for different layers, and must return quickly.
	LayerProgress func(LayerProgress)
	// Logger receives structured log records (debug: cache lookups and
	// per-layer details; info: layers indexed and the archive written;
	// warn: every entry of Result.Warnings: cache problems as they are
	// found, the others once the archive is written). Nil: discard.
	Logger *slog.Logger
	// CacheDir, when set, is a layercache directory (created if missing)
	// that keeps each layer's pass keyed by the layer's digest and by the
	// options and limits that shape it. A layer found there is not read or
	// decompressed at all, so its blob's size and digest are not verified
	// by this run: the key is the digest verified by the run that wrote
	// the entry. The DiffID in the entry is still checked against the
	// config (on a mismatch the blob is indexed instead). Unreadable or
	// corrupt entries are reported in Result.Warnings, ignored and
	// rewritten; the directory may be shared by concurrent processes.
	// Whoever can write the directory can make ociclip record wrong
	// offsets: keep it as private as the output.
	CacheDir string
	// Cache, when set instead of CacheDir, is the layer cache to use, such
	// as a layercache.Blob shared by a fleet of workers (same keys, same
	// verification as CacheDir). A cache that fails or does not answer
	// within its timeout never fails the run: the first such failure is a
	// warning and the run goes on without the cache (see cacheGuard).
	Cache layercache.Store
	// Concurrency bounds how many layers are indexed at once (default GOMAXPROCS).
	Concurrency int
	// Limits bound what hostile input can make ociclip do.
	Limits Limits
	// ExtensionOutputPath, when set, receives ociclip's extension section
	// (resume points and chunk CRCs, what OpenReader uses) instead of the
	// end of OutputPath, for services that cap the archive's size. The
	// archive followed by this file is the archive with the section. It is
	// written (atomically) before OutputPath.
	ExtensionOutputPath string
	// ArchiveSizeWarning: a run whose archive is larger warns, naming the
	// section that made it large (0: DefaultArchiveSizeWarning, 128 MiB;
	// negative: never).
	ArchiveSizeWarning int64
	// Reference selects what the archive records as the reference a mount
	// pulls by: ReferenceTag (the default, also for "") or ReferenceDigest
	// (the manifest digest, for newer clip runtimes). See the constants
	// for the trade-off.
	Reference string
	// ImageName is recorded as ImageMetadata.Name; default StorageImageRef,
	// else empty: nothing machine-local (such as the layout's path) is
	// recorded, so the archive does not depend on how the path is spelled.
	ImageName string
	// ReleaseMemory makes CreateFromOCILayout collect garbage and return
	// freed memory to the operating system (debug.FreeOSMemory) between
	// merging the layers and encoding the archive, when the per-layer
	// entries have just become garbage and the encoder is about to
	// allocate its buffers. It lowers the peak RSS of a one-shot process
	// (the CLI sets it: 98-116 MiB -> 85 MiB for a 75k-file image) at the
	// cost of one forced collection of the whole process's heap, which a
	// long-running service may not want.
	ReleaseMemory bool
}

// Limits bound resource use on hostile input; zero values mean the
// defaults (see package limits: MaxNodes defaults to twice the tar entries
// of all layers plus 4096, at most limits.DefaultMaxNodes).
type Limits = limits.Limits

// LimitError is the error every package returns when a limit is exceeded:
// errors.As(err, &le) gives the limit's name (a Limits field) and value;
// errors.Is(err, ErrLimit) holds too.
type LimitError = limits.Error

// ErrLimit is what every LimitError matches with errors.Is.
var ErrLimit = limits.ErrLimit

// Result summarises an indexing run.
type Result struct {
	OutputPath        string
	ManifestDigest    string
	RefName           string
	Layers            int
	CachedLayers      int // layers whose pass came from the layer cache (Options.CacheDir or Cache)
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
	Size              ArchiveSize // the archive written, by section
	StorageRef        archive.StorageRef
	Warnings          []string
}

// CreateFromOCILayout indexes the image selected from a local OCI layout and
// writes a clip v2 metadata archive to opts.OutputPath. On any failure the
// output path is left untouched.
func CreateFromOCILayout(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	opts, src, err := opts.Normalize()
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, log: opts.Logger, res: &Result{OutputPath: opts.OutputPath}}
	if err := r.prepare(); err != nil {
		return nil, err
	}
	layout, img, err := r.openImage(ctx, src)
	if err != nil {
		return nil, err
	}
	defer layout.Close()
	results, err := r.indexLayers(ctx, layout, img)
	if err != nil {
		return nil, err
	}
	if err := r.write(ctx, img, results); err != nil {
		return nil, err
	}
	r.res.Duration = time.Since(start)
	for _, w := range r.pending {
		r.log.Warn(w)
	}
	r.log.Info("wrote archive", "output", opts.OutputPath, "nodes", r.res.Nodes, "layers", r.res.Layers, "cached", r.res.CachedLayers, "duration", r.res.Duration.Round(time.Millisecond))
	return r.res, nil
}

// Normalize checks opts and fills in every default (CheckpointMiB,
// SpanBytes, SmallFileSpanBytes, Concurrency, Limits except the image-dependent MaxNodes, a
// discarding Logger), and returns the image source it names.
// CreateFromOCILayout calls it; a caller may call it first to report bad
// options before any work (errors wrap ErrOptions, or ociread's errors for
// a malformed Source).
func (o Options) Normalize() (Options, ociread.Source, error) {
	src, err := source(o)
	if err != nil {
		return o, src, err
	}
	if err := checkOutput(o); err != nil {
		return o, src, err
	}
	switch {
	case o.CheckpointMiB < 0:
		return o, src, fmt.Errorf("%w: CheckpointMiB %d is negative", ErrOptions, o.CheckpointMiB)
	case o.Concurrency < 0:
		return o, src, fmt.Errorf("%w: Concurrency %d is negative", ErrOptions, o.Concurrency)
	}
	if err := checkReference(o.Reference); err != nil {
		return o, src, err
	}
	lo := o.layerOptions("").Normalized()
	o.CheckpointMiB, o.SpanBytes, o.SmallFileSpanBytes = lo.CheckpointMiB, lo.SpanBytes, lo.SmallFileSpanBytes
	if o.Concurrency == 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	o.Limits = o.Limits.Normalized()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, src, nil
}

// layerOptions are the options of one layer's pass.
func (o *Options) layerOptions(mediaType string) tarindex.Options {
	return tarindex.Options{MediaType: mediaType, CheckpointMiB: o.CheckpointMiB, SpanBytes: o.SpanBytes, SmallFileSpanBytes: o.SmallFileSpanBytes, Limits: o.Limits}
}

// run is the state of one CreateFromOCILayout call.
type run struct {
	opts  Options // normalized
	log   *slog.Logger
	res   *Result
	sref  archive.StorageRef
	cache layercache.Store
	// pending are the warnings about the archive, logged once it is
	// written (a failed run reports only its error); cache problems are
	// logged as they are found.
	pending []string
}

func (r *run) warn(msg string) {
	r.res.Warnings = append(r.res.Warnings, msg)
	r.pending = append(r.pending, msg)
}

// prepare parses the storage reference, checks that the output can be
// written (before minutes of indexing) and opens the cache.
func (r *run) prepare() error {
	sref, w, err := archive.ParseStorageRef(r.opts.StorageImageRef)
	if err != nil {
		return err
	}
	r.sref = sref
	if w != "" && r.opts.Reference != ReferenceDigest {
		r.warn(w)
	}
	if r.opts.StorageImageRef == "" {
		r.warn("no storage reference given: the archive records no registry, so clip cannot mount it from one (use --storage-ref / StorageImageRef)")
	}
	// Fail before minutes of indexing if the output cannot be written.
	if r.opts.OutputPath != "" {
		if err := archive.CheckOutput(r.opts.OutputPath); err != nil {
			return err
		}
	}
	if r.opts.ExtensionOutputPath != "" {
		if err := checkExtensionOutput(r.opts); err != nil {
			return err
		}
	}
	r.cache, err = openCache(r.opts)
	return err
}

// openImage opens the source and resolves the image in it.
func (r *run) openImage(ctx context.Context, src ociread.Source) (*ociread.Layout, *ociread.Image, error) {
	layout, err := ociread.OpenSource(src, ociread.OpenOptions{Limits: r.opts.Limits})
	if err != nil {
		return nil, nil, err
	}
	img, err := layout.Resolve(ctx, ociread.Select{Ref: src.Ref, Platform: r.opts.Platform})
	if err != nil {
		layout.Close()
		return nil, nil, err
	}
	r.res.ManifestDigest = img.ManifestDescriptor.Digest.String()
	r.res.RefName = img.RefName
	r.res.Layers = len(img.Layers)
	if r.sref, err = withReference(r.opts.Reference, r.opts.StorageImageRef, r.sref, r.res.ManifestDigest); err != nil {
		layout.Close()
		return nil, nil, err
	}
	r.log.Debug("resolved image", "source", src.String(), "manifest", r.res.ManifestDigest, "ref", img.RefName, "layers", len(img.Layers))
	return layout, img, nil
}

// write merges the layers, builds the storage info and the extension and
// writes the archive; it fills the Result's counts.
func (r *run) write(ctx context.Context, img *ociread.Image, results []*layerResult) error {
	entries := make([]archive.LayerEntries, len(results))
	tres := make([]*tarindex.Result, len(results))
	for i, lr := range results {
		if lr.cached {
			r.res.CachedLayers++
		}
		for _, w := range lr.warnings {
			r.res.Warnings = append(r.res.Warnings, w)
			r.log.Warn(w, "layer", i+1, "digest", img.Layers[i].Digest.String())
		}
		tres[i] = lr.Result
		entries[i] = archive.LayerEntries{Digest: img.Layers[i].Digest.String(), Entries: lr.Entries}
		r.res.CompressedBytes += lr.CompressedSize
		r.res.UncompressedBytes += lr.UncompressedSize
	}
	var rootTime time.Time
	if img.Config.Created != nil {
		rootTime = *img.Config.Created
	}
	nodes, stats, err := archive.MergeWithLimits(entries, rootTime, mergeLimits(r.opts.Limits, entries))
	if err != nil {
		return err
	}
	// The nodes hold what the writer needs of the entries: let the
	// garbage collector have them while the archive is encoded.
	for i := range entries {
		entries[i].Entries, tres[i].Entries = nil, nil
	}
	if r.opts.ReleaseMemory {
		debug.FreeOSMemory()
	}
	info, err := archive.BuildStorageInfo(r.sref, archive.ImageInfo{
		Name:           r.imageName(),
		ManifestDigest: r.res.ManifestDigest,
		Config:         img.Config,
		DockerVersion:  dockerVersion(img.RawConfig),
		Layers:         img.Layers,
	}, tres)
	if err != nil {
		return err
	}
	if err := checkStorageInfo(info, len(img.Layers)); err != nil {
		return err
	}
	for _, w := range checkpointWarnings(img.Layers, tres) {
		r.warn(w)
	}
	// Always an extension section: it records the sha256 of clip's
	// sections, which ociclip's readers check.
	ext := &archive.Extension{}
	if r.opts.SpanBytes >= 0 {
		ext = archive.BuildExtension(img.Layers, tres)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.res.Size, err = writeOutput(r.opts, nodes, info, ext); err != nil {
		return err
	}
	if w := sizeWarning(r.res.Size, len(nodes), r.opts.ArchiveSizeWarning, r.opts.ExtensionOutputPath != ""); w != "" {
		r.warn(w)
	}
	r.res.StorageRef = r.sref
	r.res.Nodes = len(nodes)
	r.res.Files, r.res.Dirs, r.res.Symlinks = stats.Files, stats.Dirs, stats.Symlinks
	r.res.HardLinks, r.res.Whiteouts, r.res.SynthesizedDirs = stats.HardLinks, stats.Whiteouts, stats.SynthesizedDirs
	r.res.SkippedDevices, r.res.SkippedFIFOs = stats.SkippedDevices, stats.SkippedFIFOs
	if n := stats.SkippedDevices + stats.SkippedFIFOs; n > 0 {
		r.warn(fmt.Sprintf("skipped %d device node(s) and %d FIFO(s): clip v2 cannot describe them", stats.SkippedDevices, stats.SkippedFIFOs))
	}
	return nil
}

// imageName is what the archive records as ImageMetadata.Name: nothing
// machine-local.
func (r *run) imageName() string {
	if r.opts.ImageName != "" {
		return r.opts.ImageName
	}
	return r.opts.StorageImageRef
}

// mergeLimits derives the merge's limits from the options: MaxPathLen
// applies to paths grown by resolving symlinks in parents too, and the node
// limit defaults to twice the entries of all layers plus 4096.
func mergeLimits(l Limits, layers []archive.LayerEntries) Limits {
	if l.MaxNodes <= 0 {
		n := 4096
		for _, le := range layers {
			n += 2 * len(le.Entries)
		}
		l.MaxNodes = min(n, limits.DefaultMaxNodes)
	}
	return l
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

// layerResult is one layer's pass and how it was obtained.
type layerResult struct {
	*tarindex.Result
	cached   bool
	warnings []string // cache problems, reported in layer order
}

// indexLayers runs the per-layer pass over all layers, concurrently up to
// opts.Concurrency, largest blob first, taking results from the cache when
// there is one, and checks each DiffID against the config.
func (r *run) indexLayers(parent context.Context, layout *ociread.Layout, img *ociread.Image) ([]*layerResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	li := &layerIndexer{run: r, ctx: ctx, cancel: cancel, layout: layout, img: img,
		results: make([]*layerResult, len(img.Layers)), errs: make([]error, len(img.Layers))}
	for _, l := range img.Layers {
		li.total += l.Size
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(r.opts.Concurrency, len(img.Layers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				li.index(i)
			}
		}()
	}
	// Largest blob first: the image is done when its last layer is, and
	// a large layer started last would run alone at the end.
	order := make([]int, len(img.Layers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(img.Layers[b].Size, img.Layers[a].Size) })
dispatch:
	for _, i := range order {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, err
	}
	return li.outcome()
}

// layerIndexer indexes the layers of one image from several goroutines.
type layerIndexer struct {
	*run
	ctx     context.Context
	cancel  context.CancelFunc
	layout  *ociread.Layout
	img     *ociread.Image
	results []*layerResult
	errs    []error

	total int64        // compressed bytes of all layers
	read  atomic.Int64 // compressed bytes read so far, over all layers

	mu        sync.Mutex
	entries   int // tar entries of the layers completed so far
	completed int // layers completed so far
}

// progress sends p on the progress channel, giving up when ctx is done.
func (li *layerIndexer) progress(p Progress) {
	if li.opts.ProgressChan == nil {
		return
	}
	select {
	case li.opts.ProgressChan <- p:
	case <-li.ctx.Done():
	}
}

// index runs the pass of layer i (0-based, manifest order); the first
// failure cancels the others.
func (li *layerIndexer) index(i int) {
	n := len(li.img.Layers)
	desc := li.img.Layers[i]
	d := desc.Digest.String()
	lp := func(p LayerProgress) {
		if li.opts.LayerProgress != nil {
			p.LayerIndex, p.TotalLayers, p.LayerDigest, p.CompressedTotal = i+1, n, d, desc.Size
			li.opts.LayerProgress(p)
		}
	}
	li.progress(Progress{LayerIndex: i + 1, TotalLayers: n, LayerDigest: d, Stage: StageStarting,
		Message: fmt.Sprintf("Processing layer %d/%d", i+1, n), BytesProcessed: li.read.Load(), BytesTotal: li.total})
	var layerRead int64 // this layer's share of li.read
	o := li.opts.layerOptions(desc.MediaType)
	o.Progress = func(p tarindex.Progress) {
		li.read.Add(p.CompressedBytes - layerRead)
		layerRead = p.CompressedBytes
		lp(LayerProgress{Stage: StageIndexing, CompressedRead: p.CompressedBytes, UncompressedRead: p.UncompressedBytes, Entries: p.Entries})
	}
	lr, err := indexLayer(li.ctx, li.layout, desc, li.img.DiffIDs[i].String(), o, li.cache, li.log.With("layer", i+1, "digest", d), lp)
	if err != nil {
		li.errs[i] = fmt.Errorf("%s: %w", archive.LayerName(i+1, n, d), err)
		li.cancel()
		return
	}
	li.results[i] = lr
	li.read.Add(lr.CompressedSize - layerRead)
	li.mu.Lock()
	li.entries += len(lr.Entries)
	li.completed++
	files, done := li.entries, li.completed
	li.mu.Unlock()
	msg := fmt.Sprintf("Completed layer %d/%d (%d entries total)", i+1, n, files)
	source := SourceLocalLayout
	if lr.cached {
		msg, source = MessageCached, SourceIndexCache
	}
	lp(LayerProgress{Stage: StageCompleted, Cached: lr.cached, CompressedRead: lr.CompressedSize, UncompressedRead: lr.UncompressedSize, Entries: len(lr.Entries)})
	li.progress(Progress{LayerIndex: i + 1, TotalLayers: n, LayerDigest: d, Stage: StageCompleted, FilesIndexed: files, Message: msg,
		BytesProcessed: li.read.Load(), BytesTotal: li.total, CompletedLayers: done, Source: source})
}

// outcome returns the results, or the error of the first failing layer in
// manifest order (a layer that only saw the cancellation another one
// caused is not it).
func (li *layerIndexer) outcome() ([]*layerResult, error) {
	for _, err := range li.errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for i, r := range li.results {
		if r == nil {
			return nil, fmt.Errorf("%s: %w", archive.LayerName(i+1, len(li.results), li.img.Layers[i].Digest.String()), context.Canceled)
		}
	}
	return li.results, nil
}

// indexLayer returns the pass over one layer: from the cache when it holds
// a valid entry that agrees with the descriptor and the config, otherwise by
// indexing the blob (verified against its descriptor), checking its DiffID
// and storing the result in the cache.
func indexLayer(ctx context.Context, layout *ociread.Layout, desc v1.Descriptor, diffID string, o tarindex.Options, cache layercache.Store, log *slog.Logger, lp func(LayerProgress)) (*layerResult, error) {
	lr := &layerResult{}
	var key layercache.Key
	if cache != nil {
		var err error
		if key, err = layercache.NewKey(desc.Digest, desc.MediaType, o); err != nil {
			log.Debug("layer not cacheable", "err", err)
			cache = nil
		}
	}
	if cache != nil {
		r, err := cache.Get(ctx, key)
		switch {
		case err == nil && r.DiffID.String() == diffID && r.CompressedSize == desc.Size:
			log.Debug("layer cache hit", "entry", cache.Location(key), "entries", len(r.Entries))
			lr.Result, lr.cached = r, true
			lp(LayerProgress{Stage: StageStarting, Cached: true})
			return lr, ctx.Err()
		case err == nil:
			lr.warnings = append(lr.warnings, fmt.Sprintf("layer cache entry %s (DiffID %s, %d bytes) disagrees with the image (DiffID %s, %d bytes); indexing the blob instead",
				cache.Location(key), r.DiffID, r.CompressedSize, diffID, desc.Size))
		case errors.Is(err, layercache.ErrNotFound):
			log.Debug("layer cache miss", "entry", cache.Location(key))
		case errors.Is(err, errCacheOff):
			log.Debug("layer cache skipped", "err", err)
		default:
			lr.warnings = append(lr.warnings, fmt.Sprintf("ignoring layer cache entry: %v", err))
		}
	}
	lp(LayerProgress{Stage: StageStarting})
	start := time.Now()
	rc, err := layout.OpenBlob(desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := tarindex.Index(ctx, rc, o)
	if err != nil {
		return nil, blobFault(ctx, rc, err)
	}
	if r.DiffID.String() != diffID {
		return nil, fmt.Errorf("%w: uncompressed sha256 is %s, config rootfs.diff_ids says %s", ErrDiffIDMismatch, r.DiffID, diffID)
	}
	dur := time.Since(start)
	log.Info("indexed layer", "compressed", r.CompressedSize, "uncompressed", r.UncompressedSize, "entries", len(r.Entries),
		"duration", dur.Round(time.Millisecond), "MBps", math.Round(float64(r.UncompressedSize)/1e5/max(dur.Seconds(), 1e-9))/10)
	lr.Result = r
	if cache != nil {
		switch err := cache.Put(ctx, key, r); {
		case errors.Is(err, errCacheOff):
		case err != nil:
			lr.warnings = append(lr.warnings, fmt.Sprintf("could not write layer cache entry: %v", err))
		default:
			log.Debug("layer cached", "entry", cache.Location(key))
		}
	}
	return lr, nil
}

// blobFault decides what a failed layer pass reports. When the pass stopped
// early on the layer's content (corrupt compression, an unsafe path, a
// limit), the rest of the blob is read through the verifying reader: if the
// blob does not match its digest, the blob is what is wrong, and the error
// says so first (wrapping both ociread.ErrDigestMismatch or ErrSizeMismatch
// and the pass's error). Reading stops when ctx is done.
func blobFault(ctx context.Context, rc io.Reader, err error) error {
	if ctx.Err() != nil || errors.Is(err, ociread.ErrDigestMismatch) || errors.Is(err, ociread.ErrSizeMismatch) {
		return err
	}
	_, derr := io.Copy(io.Discard, ctxReader{ctx, rc})
	if errors.Is(derr, ociread.ErrDigestMismatch) || errors.Is(derr, ociread.ErrSizeMismatch) {
		return fmt.Errorf("%w (reading it also failed: %w)", derr, err)
	}
	return err
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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
