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

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

const indexUsage = `Usage: ociclip index SOURCE -o OUT.clip [options]

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

` + cacheFlagsUsage + `
Limits (0 = the default) bound what a hostile or broken image can make
ociclip do; exceeding one fails with an error that names it:
  --max-entries N         tar entries per layer (default 1000000; each costs
                          about 750 bytes of memory until the archive is written)
  --max-nodes N           nodes of the merged tree (default twice the entries
                          of all layers plus 4096, at most 10000000)
  --max-path-len N        bytes in a path (default 4096)
  --max-uncompressed SIZE uncompressed bytes per layer (default 1T; SIZE takes
                          a K, M, G or T suffix, powers of 1024)
  --max-json-bytes SIZE   index.json, manifest or config (default 8M)
  --max-index-depth N     nested image indexes (default 8)

Progress goes to stderr: progress bars with bytes, throughput and ETA when
stderr is a terminal, otherwise one line per layer start and finish (see
--progress); -q shows neither, nor warnings. The summary goes to stdout
(--json for machines).

Example:
  skopeo copy docker://docker.io/library/ubuntu:24.04 oci:/tmp/ubuntu:24.04
  ociclip index oci:/tmp/ubuntu:24.04 -o ubuntu.clip --storage-ref docker.io/library/ubuntu:24.04
`

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
	fs := newFlagSet("index", indexUsage, stderr)
	out := fs.String("o", "", "output `FILE` (.clip); required")
	fs.StringVar(out, "output", "", "same as -o")
	extOut := fs.String("extension-out", "", "write ociclip's extension section (resume points) to `FILE` instead of the end of the .clip")
	ref := fs.String("ref", "", "select the image by ref name or digest (with a plain DIR SOURCE)")
	reference := fs.String("reference", ociclip.ReferenceTag, "what the archive records for a mount to pull by: `tag` (every clip; tags move) or digest (the manifest digest; newer clip)")
	storageRef := fs.String("storage-ref", "", "registry `REF` a mount fetches layers from, e.g. docker.io/library/ubuntu:24.04")
	platform := fs.String("platform", "", "`os/arch[/variant]` to pick from a multi-platform index (default linux/"+defaultArch()+")")
	checkpointMiB := fs.Int("checkpoint-mib", 2, "spacing of clip's gzip checkpoints in MiB of uncompressed data")
	spanMiB := fs.Int("span-mib", 4, "spacing of ociclip's resumable checkpoints in MiB (-1: none)")
	jobs := fs.Int("jobs", 0, "layers indexed at once (default: number of CPUs)")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	quiet := fs.Bool("q", false, "no progress or warnings on stderr (errors still)")
	cacheDir := fs.String("cache-dir", "", "keep per-layer indexes in `DIR` and reuse them (created if missing)")
	cacheURL := fs.String("cache", "", "keep per-layer indexes in the bucket at `URL` (s3://, gs://, azblob://, file://) or a directory")
	cacheTimeout := fs.Duration("cache-timeout", 0, "bound on each --cache request (default 10s)")
	progressMode := fs.String("progress", progressAuto, "`MODE`: auto (bars on a terminal, else lines), bars, lines or none")
	logLevel := fs.String("log-level", "warn", "log records shown on stderr: debug, info, warn or error")
	maxEntries := fs.Int("max-entries", 0, "limit: tar entries per layer (0: default 1000000)")
	maxNodes := fs.Int("max-nodes", 0, "limit: nodes of the merged tree (0: default)")
	maxPathLen := fs.Int("max-path-len", 0, "limit: bytes in a path (0: default 4096)")
	var maxUncompressed, maxJSON sizeFlag
	fs.Var(&maxUncompressed, "max-uncompressed", "limit: uncompressed bytes per layer, `SIZE` with K/M/G/T suffix (0: default 1T)")
	fs.Var(&maxJSON, "max-json-bytes", "limit: bytes of index.json, a manifest or config, `SIZE` (0: default 8M)")
	maxDepth := fs.Int("max-index-depth", 0, "limit: nested image indexes (0: default 8)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	switch *progressMode {
	case progressAuto, progressBars, progressLines, progressNone:
	default:
		return fmt.Errorf("%w: --progress must be auto, bars, lines or none, got %q", errUsage, *progressMode)
	}
	if *quiet {
		*progressMode = progressNone
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "log-level" })
		if !explicit {
			level = slog.LevelError
		}
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want exactly one SOURCE, got %d arguments", errUsage, len(pos))
	}
	if *out == "" {
		return fmt.Errorf("%w: -o OUT.clip is required", errUsage)
	}
	if *checkpointMiB <= 0 {
		return fmt.Errorf("%w: --checkpoint-mib must be positive, got %d", errUsage, *checkpointMiB)
	}
	if *spanMiB == 0 || *spanMiB < -1 {
		return fmt.Errorf("%w: --span-mib must be positive or -1, got %d", errUsage, *spanMiB)
	}
	for _, l := range []struct {
		name string
		v    int64
	}{{"max-entries", int64(*maxEntries)}, {"max-nodes", int64(*maxNodes)}, {"max-path-len", int64(*maxPathLen)}, {"max-index-depth", int64(*maxDepth)}} {
		if l.v < 0 {
			return fmt.Errorf("%w: --%s must not be negative, got %d", errUsage, l.name, l.v)
		}
	}
	src, err := parseSource(pos[0], *ref)
	if err != nil {
		return err
	}
	var plat *v1.Platform
	if *platform != "" {
		p, err := ociread.ParsePlatform(*platform)
		if err != nil {
			return fmt.Errorf("%w: --platform: %v", errUsage, err)
		}
		plat = &p
	}

	cache, closer, err := openCacheFlag(ctx, *cacheURL, *cacheDir, *cacheTimeout)
	if err != nil {
		return err
	}
	if closer != nil {
		defer closer.Close()
	}
	logs := &sink{w: stderr}
	log := slog.New(newLogHandler(logs, level))
	rep := newReporter(*progressMode, stderr, logs)
	res, err := ociclip.CreateFromOCILayout(ctx, ociclip.Options{
		Source:              src.String(),
		StorageImageRef:     *storageRef,
		Reference:           *reference,
		OutputPath:          *out,
		ExtensionOutputPath: *extOut,
		CheckpointMiB:       *checkpointMiB,
		SpanBytes:           spanBytes(*spanMiB),
		Platform:            plat,
		Concurrency:         *jobs,
		CacheDir:            *cacheDir,
		Cache:               cache,
		Logger:              log,
		LayerProgress:       rep.layer,
		ReleaseMemory:       true, // one image per process: keep the peak RSS low
		Limits: ociclip.Limits{
			MaxJSONBytes: int64(maxJSON), MaxIndexDepth: *maxDepth, MaxEntries: *maxEntries,
			MaxPathLen: *maxPathLen, MaxUncompressedBytes: int64(maxUncompressed), MaxNodes: *maxNodes,
		},
	})
	rep.finish(err)
	if err != nil {
		return withLimitHint(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
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
	layers := fmt.Sprintf("%d layers", res.Layers)
	if *cacheDir != "" || cache != nil {
		layers += fmt.Sprintf(" (%d cached)", res.CachedLayers)
	}
	rate := ""
	if s := res.Duration.Seconds(); s > 0 && res.CachedLayers == 0 {
		rate = fmt.Sprintf(" (%.0f MB/s)", float64(res.UncompressedBytes)/1e6/s)
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d nodes (%d files, %d dirs, %d symlinks, %d hard links), %s uncompressed in %.2fs%s\n",
		res.OutputPath, layers, res.Nodes, res.Files, res.Dirs, res.Symlinks, res.HardLinks,
		humanBytes(res.UncompressedBytes), res.Duration.Seconds(), rate)
	fmt.Fprintf(stdout, "manifest %s, archive %s%s\n", res.ManifestDigest, humanBytes(res.Size.Total), extensionNote(*extOut, res.Size.Extension))
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

// spanBytes converts --span-mib to Options.SpanBytes (-1: none).
func spanBytes(mib int) int64 {
	if mib < 0 {
		return -1
	}
	return int64(mib) << 20
}

// sizeFlag is a byte count given as a number with an optional K, M, G or T
// suffix (powers of 1024).
type sizeFlag int64

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

// limitFlags maps the limit names in error messages to the flags that set them.
var limitFlags = []struct{ name, flag string }{
	{"MaxEntries", "--max-entries"}, {"MaxNodes", "--max-nodes"}, {"MaxPathLen", "--max-path-len"},
	{"MaxUncompressedBytes", "--max-uncompressed"}, {"MaxJSONBytes", "--max-json-bytes"}, {"MaxIndexDepth", "--max-index-depth"},
}

// withLimitHint adds the flag that raises the limit a limit error names.
func withLimitHint(err error) error {
	if !errors.Is(err, tarindex.ErrLimit) && !errors.Is(err, archive.ErrLimit) && !errors.Is(err, ociread.ErrLimit) {
		return err
	}
	msg := err.Error()
	for _, l := range limitFlags {
		if strings.Contains(msg, l.name) {
			return fmt.Errorf("%w (raise the limit with %s if the image is legitimate)", err, l.flag)
		}
	}
	return err
}
