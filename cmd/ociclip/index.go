package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/ociread"
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
	Seconds           float64  `json:"seconds"`
	Warnings          []string `json:"warnings,omitempty"`
}

func runIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("index", indexUsage, stderr)
	out := fs.String("o", "", "output `FILE` (.clip); required")
	fs.StringVar(out, "output", "", "same as -o")
	ref := fs.String("ref", "", "select the image by ref name or digest (with a plain DIR SOURCE)")
	storageRef := fs.String("storage-ref", "", "registry `REF` a mount fetches layers from, e.g. docker.io/library/ubuntu:24.04")
	platform := fs.String("platform", "", "`os/arch[/variant]` to pick from a multi-platform index (default linux/"+defaultArch()+")")
	checkpointMiB := fs.Int("checkpoint-mib", 2, "spacing of clip's gzip checkpoints in MiB of uncompressed data")
	spanMiB := fs.Int("span-mib", 4, "spacing of ociclip's resumable checkpoints in MiB (-1: none)")
	jobs := fs.Int("jobs", 0, "layers indexed at once (default: number of CPUs)")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	quiet := fs.Bool("q", false, "no progress or warnings on stderr")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
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

	progress := make(chan ociclip.Progress, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range progress {
			if *quiet {
				continue
			}
			fmt.Fprintf(stderr, "%s layer %d/%d %s%s\n", time.Now().Format("15:04:05"), p.LayerIndex, p.TotalLayers, shortDigest(p.LayerDigest), stageText(p))
		}
	}()
	res, err := ociclip.CreateFromOCILayout(ctx, ociclip.Options{
		Source:          src.String(),
		StorageImageRef: *storageRef,
		OutputPath:      *out,
		CheckpointMiB:   *checkpointMiB,
		SpanBytes:       spanBytes(*spanMiB),
		Platform:        plat,
		ProgressChan:    progress,
		Concurrency:     *jobs,
	})
	close(progress)
	wg.Wait()
	if err != nil {
		return err
	}
	if !*quiet {
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(indexSummary{
			Output: res.OutputPath, ManifestDigest: res.ManifestDigest, RefName: res.RefName,
			RegistryURL: res.StorageRef.RegistryURL, Repository: res.StorageRef.Repository, Reference: res.StorageRef.Reference,
			Layers: res.Layers, Nodes: res.Nodes, Files: res.Files, Dirs: res.Dirs, Symlinks: res.Symlinks,
			HardLinks: res.HardLinks, Whiteouts: res.Whiteouts, SynthesizedDirs: res.SynthesizedDirs,
			SkippedDevices: res.SkippedDevices, SkippedFIFOs: res.SkippedFIFOs,
			CompressedBytes: res.CompressedBytes, UncompressedBytes: res.UncompressedBytes,
			Seconds: res.Duration.Seconds(), Warnings: res.Warnings,
		})
	}
	mbps := 0.0
	if s := res.Duration.Seconds(); s > 0 {
		mbps = float64(res.UncompressedBytes) / 1e6 / s
	}
	fmt.Fprintf(stdout, "wrote %s: %d layers, %d nodes (%d files, %d dirs, %d symlinks, %d hard links), %s uncompressed in %.2fs (%.0f MB/s)\n",
		res.OutputPath, res.Layers, res.Nodes, res.Files, res.Dirs, res.Symlinks, res.HardLinks,
		humanBytes(res.UncompressedBytes), res.Duration.Seconds(), mbps)
	fmt.Fprintf(stdout, "manifest %s\n", res.ManifestDigest)
	return nil
}

func stageText(p ociclip.Progress) string {
	if p.Stage == "completed" {
		return fmt.Sprintf(" done (%d entries so far)", p.FilesIndexed)
	}
	return " " + p.Stage
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
