package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/limits"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

var indexUsage = fmt.Sprintf(`Usage: ociclip index SOURCE -o OUT.clip [options]

Index the image in a local OCI layout and write clip v2 metadata to OUT.clip.

SOURCE uses skopeo's transport syntax:
  oci:DIR[:REF]              an OCI layout directory; REF is the image's
                             org.opencontainers.image.ref.name (omit it when the
                             layout holds a single image)
  oci:DIR@sha256:HEX         the manifest (or index) with that digest
  oci-archive:FILE[:REF]     a tar of an OCI layout, read in place
  docker-archive:FILE[:REF]  "docker save" output (REF: a RepoTag such as
                             busybox:1.35, or @N for the N-th image)
  dir:DIR                    skopeo's dir: transport
  DIR                        a plain layout directory; select with --ref

The output is written atomically: on any failure OUT.clip is left as it was.
A symlink is followed and its target replaced, in the target's directory; a
device node, FIFO or socket is refused. "-o -" (or /dev/stdout) streams the
archive to stdout instead, not atomically, and prints the summary on stderr.
A new file gets mode 0666 less the umask; a replaced file keeps its mode and,
where permitted, its owner.
Without --storage-ref the archive records no registry, and clip cannot mount it.
--reference tag (the default) records the storage reference's tag, which every
clip mounts but which moves when pushed again; --reference digest records the
manifest digest, which newer clip mounts as REPO@sha256:... (clip a2a14fb
cannot) and which never moves. --extension-out FILE writes ociclip's extension
section (resume points for random access) to FILE instead of the end of
OUT.clip, for services that cap the archive size (cat OUT.clip FILE restores
the whole archive). A warning says when OUT.clip passes 128 MiB and why.

With --cache-dir, each layer's index is kept in DIR keyed by the layer digest
and the options that shape it; a later run (of this or another image sharing
layers) takes those layers from the cache without reading their blobs. The
directory may be shared by concurrent runs; bad entries are reported, ignored
and rewritten.

`+cacheFlagsUsage+`
Limits (0 = the default) bound what a hostile or broken image can make
ociclip do; exceeding one fails with an error that names it:
  --max-entries N         tar entries per layer (default %d; each costs
                          about 750 bytes of memory until the archive is written)
  --max-nodes N           nodes of the merged tree (default twice the entries
                          of all layers plus 4096, at most %d)
  --max-path-len N        bytes in a path (default %d)
  --max-uncompressed SIZE uncompressed bytes per layer (default %s; SIZE takes
                          a K, M, G or T suffix, powers of 1024)
  --max-json-bytes SIZE   index.json, manifest or config (default %s)
  --max-index-depth N     nested image indexes (default %d)

Progress goes to stderr: progress bars with bytes, throughput and ETA when
stderr is a terminal, otherwise one line per layer start and finish (see
--progress); -q shows neither, nor warnings. The summary goes to stdout
(--json for machines).

Example:
  skopeo copy docker://docker.io/library/ubuntu:24.04 oci:/tmp/ubuntu:24.04
  ociclip index oci:/tmp/ubuntu:24.04 -o ubuntu.clip --storage-ref docker.io/library/ubuntu:24.04
`, limits.DefaultMaxEntries, limits.DefaultMaxNodes, limits.DefaultMaxPathLen,
	formatSize(limits.DefaultMaxUncompressedBytes), formatSize(limits.DefaultMaxJSONBytes), limits.DefaultMaxIndexDepth)

// parseSource parses SOURCE (skopeo's transport syntax) and applies --ref.
func parseSource(s, refFlag string) (ociread.Source, error) {
	src, err := ociread.ParseSource(s)
	if err != nil {
		return ociread.Source{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if refFlag != "" {
		if src.Ref != "" && src.Ref != refFlag {
			return ociread.Source{}, fmt.Errorf("%w: give the ref either in SOURCE (%s) or with --ref, not both", errUsage, s)
		}
		src.Ref = refFlag
	}
	return src, nil
}

// indexSummary is the --json output of index.
type indexSummary struct {
	Output            string   `json:"output"`
	ManifestDigest    string   `json:"manifestDigest"`
	RefName           string   `json:"refName,omitempty"`
	RegistryURL       string   `json:"registryURL,omitempty"`
	Repository        string   `json:"repository,omitempty"`
	Reference         string   `json:"reference,omitempty"`
	Layers            int      `json:"layers"`
	CachedLayers      int      `json:"cachedLayers"`
	Nodes             int      `json:"nodes"`
	Files             int      `json:"files"`
	Dirs              int      `json:"dirs"`
	Symlinks          int      `json:"symlinks"`
	HardLinks         int      `json:"hardLinks"`
	Whiteouts         int      `json:"whiteouts"`
	SynthesizedDirs   int      `json:"synthesizedDirs"`
	SkippedDevices    int      `json:"skippedDevices"`
	SkippedFIFOs      int      `json:"skippedFIFOs"`
	CompressedBytes   int64    `json:"compressedBytes"`
	UncompressedBytes int64    `json:"uncompressedBytes"`
	ArchiveBytes      int64    `json:"archiveBytes"`
	ExtensionBytes    int64    `json:"extensionBytes"`
	Seconds           float64  `json:"seconds"`
	Warnings          []string `json:"warnings,omitempty"`
}

func runIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newIndexFlags(stdout)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one SOURCE, got %d arguments", errUsage, len(pos))
	}
	level, err := f.logLevel(fs)
	if err != nil {
		return err
	}
	opts, err := f.options(pos[0])
	if err != nil {
		return err
	}
	logs := &sink{w: stderr}
	opts.Logger = slog.New(newLogHandler(logs, level))
	rep := newReporter(f.progress, stderr, logs)
	opts.LayerProgress = rep.layer
	dest := outputFor(f.out, stdout, stderr)
	opts.OutputPath, opts.Output = dest.path, dest.stream
	cache, closer, err := openCacheFlag(ctx, f.cacheURL, f.cacheDir, f.cacheTimeout)
	if err != nil {
		return err
	}
	if closer != nil {
		defer closer.Close()
	}
	opts.Cache = cache
	res, err := ociclip.CreateFromOCILayout(ctx, opts)
	rep.finish(err)
	if err != nil {
		return withOutputHint(withLimitHint(err))
	}
	res.OutputPath = dest.name
	return writeIndexResult(dest.summary, res, f.json, f.cacheDir != "" || cache != nil, f.extOut)
}

// indexFlags are the flags of the index command.
type indexFlags struct {
	out, extOut, ref, reference, storageRef, platform string
	cacheDir, cacheURL, progress, level               string
	cacheTimeout                                      time.Duration
	checkpointMiB, spanMiB, smallSpanKiB, jobs        int
	json, quiet                                       bool
	maxEntries, maxNodes, maxPathLen, maxDepth        int
	maxUncompressed, maxJSON                          sizeFlag
}

// newIndexFlags returns the flag set of index, whose help goes to w.
func newIndexFlags(w io.Writer) (*flag.FlagSet, *indexFlags) {
	fs := newFlagSet("index", indexUsage, w)
	f := &indexFlags{}
	fs.StringVar(&f.out, "o", "", "output `FILE` (.clip); required")
	fs.StringVar(&f.out, "output", "", "same as -o")
	fs.StringVar(&f.extOut, "extension-out", "", "write ociclip's extension section (resume points) to `FILE` instead of the end of the .clip")
	fs.StringVar(&f.reference, "reference", ociclip.ReferenceTag, "what the archive records for a mount to pull by: `tag` (every clip; tags move) or digest (the manifest digest; newer clip)")
	fs.StringVar(&f.ref, "ref", "", "select the image by ref name or digest (with a plain DIR SOURCE)")
	fs.StringVar(&f.storageRef, "storage-ref", "", "registry `REF` a mount fetches layers from, e.g. docker.io/library/ubuntu:24.04")
	fs.StringVar(&f.platform, "platform", "", "`os/arch[/variant]` to pick from a multi-platform index (default linux/"+defaultArch()+")")
	fs.IntVar(&f.checkpointMiB, "checkpoint-mib", tarindex.DefaultCheckpointMiB, "spacing of clip's gzip checkpoints in MiB of uncompressed data")
	fs.IntVar(&f.spanMiB, "span-mib", tarindex.DefaultSpanBytes>>20, "spacing of ociclip's resumable checkpoints in MiB (-1: none)")
	fs.IntVar(&f.smallSpanKiB, "small-file-span-kib", tarindex.DefaultSmallFileSpanBytes>>10, fmt.Sprintf("closer spacing of those checkpoints in KiB where a layer holds many small files (%d files between two; -1: none)", tarindex.SmallFileSpanFiles))
	fs.IntVar(&f.jobs, "jobs", 0, "layers indexed at once (default: number of CPUs)")
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON on stdout")
	fs.BoolVar(&f.quiet, "q", false, "no progress or warnings on stderr (errors still)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "keep per-layer indexes in `DIR` and reuse them (created if missing)")
	fs.StringVar(&f.cacheURL, "cache", "", "keep per-layer indexes in the bucket at `URL` (s3://, azblob://, file://; gs:// with -tags ociclip_gcs) or a directory")
	fs.DurationVar(&f.cacheTimeout, "cache-timeout", 0, "bound on each --cache request (default 10s)")
	fs.StringVar(&f.progress, "progress", progressAuto, "`MODE`: auto (bars on a terminal, else lines), bars, lines or none")
	fs.StringVar(&f.level, "log-level", "warn", "log records shown on stderr: debug, info, warn or error")
	fs.IntVar(&f.maxEntries, "max-entries", 0, fmt.Sprintf("limit: tar entries per layer (0: default %d)", limits.DefaultMaxEntries))
	fs.IntVar(&f.maxNodes, "max-nodes", 0, "limit: nodes of the merged tree (0: default)")
	fs.IntVar(&f.maxPathLen, "max-path-len", 0, fmt.Sprintf("limit: bytes in a path (0: default %d)", limits.DefaultMaxPathLen))
	fs.Var(&f.maxUncompressed, "max-uncompressed", fmt.Sprintf("limit: uncompressed bytes per layer, `SIZE` with K/M/G/T suffix (0: default %s)", formatSize(limits.DefaultMaxUncompressedBytes)))
	fs.Var(&f.maxJSON, "max-json-bytes", fmt.Sprintf("limit: bytes of index.json, a manifest or config, `SIZE` (0: default %s)", formatSize(limits.DefaultMaxJSONBytes)))
	fs.IntVar(&f.maxDepth, "max-index-depth", 0, fmt.Sprintf("limit: nested image indexes (0: default %d)", limits.DefaultMaxIndexDepth))
	return fs, f
}

// logLevel checks --progress and returns the log level, which -q lowers to
// errors unless --log-level was given.
func (f *indexFlags) logLevel(fs *flag.FlagSet) (slog.Level, error) {
	level, err := parseLevel(f.level)
	if err != nil {
		return level, err
	}
	switch f.progress {
	case progressAuto, progressBars, progressLines, progressNone:
	default:
		return level, fmt.Errorf("%w: --progress must be auto, bars, lines or none, got %q", errUsage, f.progress)
	}
	if f.quiet {
		f.progress = progressNone
		explicit := false
		fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "log-level" })
		if !explicit {
			level = slog.LevelError
		}
	}
	return level, nil
}

// options checks the flags and builds the API's options for SOURCE s.
func (f *indexFlags) options(s string) (ociclip.Options, error) {
	if f.out == "" {
		return ociclip.Options{}, fmt.Errorf("%w: -o OUT.clip is required", errUsage)
	}
	if f.checkpointMiB <= 0 {
		return ociclip.Options{}, fmt.Errorf("%w: --checkpoint-mib must be positive, got %d", errUsage, f.checkpointMiB)
	}
	if f.spanMiB == 0 || f.spanMiB < -1 {
		return ociclip.Options{}, fmt.Errorf("%w: --span-mib must be positive or -1, got %d", errUsage, f.spanMiB)
	}
	if f.smallSpanKiB == 0 || f.smallSpanKiB < -1 {
		return ociclip.Options{}, fmt.Errorf("%w: --small-file-span-kib must be positive or -1, got %d", errUsage, f.smallSpanKiB)
	}
	for _, l := range []struct {
		name string
		v    int64
	}{{"jobs", int64(f.jobs)}, {"max-entries", int64(f.maxEntries)}, {"max-nodes", int64(f.maxNodes)}, {"max-path-len", int64(f.maxPathLen)}, {"max-index-depth", int64(f.maxDepth)}} {
		if l.v < 0 {
			return ociclip.Options{}, fmt.Errorf("%w: --%s must not be negative, got %d", errUsage, l.name, l.v)
		}
	}
	src, err := parseSource(s, f.ref)
	if err != nil {
		return ociclip.Options{}, err
	}
	if _, _, err := archive.ParseStorageRef(f.storageRef); err != nil {
		return ociclip.Options{}, fmt.Errorf("%w: --storage-ref: %v", errUsage, err)
	}
	var plat *v1.Platform
	if f.platform != "" {
		p, err := ociread.ParsePlatform(f.platform)
		if err != nil {
			return ociclip.Options{}, fmt.Errorf("%w: --platform: %v", errUsage, err)
		}
		plat = &p
	}
	opts := ociclip.Options{
		Source:              src.String(),
		StorageImageRef:     f.storageRef,
		OutputPath:          f.out,
		Reference:           f.reference,
		ExtensionOutputPath: f.extOut,
		CheckpointMiB:       f.checkpointMiB,
		SpanBytes:           spanBytes(f.spanMiB, 20),
		SmallFileSpanBytes:  spanBytes(f.smallSpanKiB, 10),
		Platform:            plat,
		Concurrency:         f.jobs,
		CacheDir:            f.cacheDir,
		ReleaseMemory:       true, // one image per process: keep the peak RSS low
		Limits: ociclip.Limits{
			MaxJSONBytes: int64(f.maxJSON), MaxIndexDepth: f.maxDepth, MaxEntries: f.maxEntries,
			MaxPathLen: f.maxPathLen, MaxUncompressedBytes: int64(f.maxUncompressed), MaxNodes: f.maxNodes,
		},
	}
	// The API's own checks, before any work: its option errors are usage errors here.
	if _, _, err := opts.Normalize(); err != nil {
		if errors.Is(err, ociclip.ErrOptions) {
			return opts, fmt.Errorf("%w: %v", errUsage, err)
		}
		return opts, err
	}
	return opts, nil
}

// writeIndexResult prints the result on w, as text or JSON.
func writeIndexResult(w io.Writer, res *ociclip.Result, asJSON, cached bool, extOut string) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(indexSummary{
			Output: res.OutputPath, ManifestDigest: res.ManifestDigest, RefName: res.RefName,
			RegistryURL: res.StorageRef.RegistryURL, Repository: res.StorageRef.Repository, Reference: res.StorageRef.Reference,
			Layers: res.Layers, CachedLayers: res.CachedLayers, Nodes: res.Nodes, Files: res.Files, Dirs: res.Dirs, Symlinks: res.Symlinks,
			HardLinks: res.HardLinks, Whiteouts: res.Whiteouts, SynthesizedDirs: res.SynthesizedDirs,
			SkippedDevices: res.SkippedDevices, SkippedFIFOs: res.SkippedFIFOs,
			CompressedBytes: res.CompressedBytes, UncompressedBytes: res.UncompressedBytes,
			ArchiveBytes: res.Size.Total, ExtensionBytes: res.Size.Extension,
			Seconds: res.Duration.Seconds(), Warnings: res.Warnings,
		})
	}
	printIndexSummary(w, res, cached)
	fmt.Fprintf(w, "manifest %s, archive %s%s\n", res.ManifestDigest, humanBytes(res.Size.Total), extensionNote(extOut, res.Size.Extension))
	return nil
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// spanBytes converts --span-mib (shift 20) or --small-file-span-kib (shift
// 10) to bytes (-1: none).
func spanBytes(n int, shift uint) int64 {
	if n < 0 {
		return -1
	}
	return int64(n) << shift
}

// sizeFlag is a byte count given as a number with an optional K, M, G or T
// suffix (powers of 1024).
type sizeFlag int64

var _ flag.Value = (*sizeFlag)(nil)

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// parseSize parses "123", "64K", "8M", "1G" or "1T" (case-insensitive, an
// optional trailing "B" or "iB" allowed) into bytes.
func parseSize(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	shift := 0
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			shift = 10 * (i + 1)
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q (want a non-negative number with an optional K, M, G or T suffix)", v)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return n << shift, nil
}

// limitFlags maps the limits (LimitError.Name) to the flags that set them.
var limitFlags = map[string]string{
	"MaxEntries": "--max-entries", "MaxNodes": "--max-nodes", "MaxPathLen": "--max-path-len",
	"MaxUncompressedBytes": "--max-uncompressed", "MaxJSONBytes": "--max-json-bytes", "MaxIndexDepth": "--max-index-depth",
}

// withLimitHint adds the flag that raises the limit a limit error names.
func withLimitHint(err error) error {
	var le *ociclip.LimitError
	if !errors.As(err, &le) || limitFlags[le.Name] == "" {
		return err
	}
	return fmt.Errorf("%w (raise the limit with %s if the image is legitimate)", err, limitFlags[le.Name])
}

// formatSize prints a byte count as parseSize reads it: "8M", "1T", "1000".
func formatSize(n int64) string {
	for i := 4; i > 0; i-- {
		if unit := int64(1) << (10 * i); n >= unit && n%unit == 0 {
			return fmt.Sprintf("%d%c", n/unit, "KMGT"[i-1])
		}
	}
	return strconv.FormatInt(n, 10)
}
