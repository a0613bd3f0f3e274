package ociclip

import (
	"errors"
	"fmt"

	"github.com/beam-cloud/clip/pkg/common"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/tarindex"
)

// ErrIncompleteArchive: the storage info lacks what an image service
// checks when it restores an archive (ImageMetadata, the layer list, the
// decompressed hashes). It means a bug in ociclip; no archive is written.
var ErrIncompleteArchive = errors.New("archive would be incomplete")

// DefaultArchiveSizeWarning is the archive size past which a run warns
// (Options.ArchiveSizeWarning): the image service rejects larger archives.
const DefaultArchiveSizeWarning = 128 << 20

// checkpointEndSlack is how far before the end of a gzip layer's
// uncompressed stream its last clip checkpoint may be without a warning:
// newer clip takes the largest checkpoint's UOff as the layer's size.
const checkpointEndSlack = 1 << 20

// ArchiveSize is the archive written, by section.
type ArchiveSize = archive.Sizes

// checkStorageInfo checks what the image service rejects an archive for.
func checkStorageInfo(info *common.OCIStorageInfo, layers int) error {
	switch {
	case info.ImageMetadata == nil:
		return fmt.Errorf("%w: no ImageMetadata", ErrIncompleteArchive)
	case layers > 0 && (len(info.Layers) != layers || len(info.DecompressedHashByLayer) == 0):
		return fmt.Errorf("%w: %d layers and %d decompressed hashes recorded for an image of %d layers",
			ErrIncompleteArchive, len(info.Layers), len(info.DecompressedHashByLayer), layers)
	}
	return nil
}

// checkpointWarnings names the gzip layers whose last clip checkpoint is
// far from the end of the layer's uncompressed stream.
func checkpointWarnings(layers []v1.Descriptor, results []*tarindex.Result) []string {
	var w []string
	for i, r := range results {
		if r.Compression != layerz.Gzip {
			continue
		}
		var last int64
		if n := len(r.GzipCheckpoints); n > 0 {
			last = r.GzipCheckpoints[n-1].UOff
		}
		if r.UncompressedSize-last > checkpointEndSlack {
			w = append(w, fmt.Sprintf("layer %d %s: the last gzip checkpoint is at %d of %d uncompressed bytes: clip runtimes that estimate the layer's size from it will take it as shorter",
				i+1, layers[i].Digest, last, r.UncompressedSize))
		}
	}
	return w
}

// checkExtensionOutput checks Options.ExtensionOutputPath as
// archive.CheckOutput checks the output.
func checkExtensionOutput(opts Options) error {
	switch {
	case opts.Output != nil:
		return fmt.Errorf("%w: ExtensionOutputPath goes with OutputPath, not Output", ErrOptions)
	case opts.SpanBytes < 0:
		return fmt.Errorf("%w: ExtensionOutputPath is set but SpanBytes < 0 writes no extension section", ErrOptions)
	case opts.ExtensionOutputPath == opts.OutputPath:
		return fmt.Errorf("%w: ExtensionOutputPath is OutputPath", ErrOptions)
	}
	return archive.CheckOutput(opts.ExtensionOutputPath)
}

// sizeWarning says what made an archive larger than limit (0: the
// default; negative: no limit), or "".
func sizeWarning(s ArchiveSize, nodes int, limit int64, extSeparate bool) string {
	if limit == 0 {
		limit = DefaultArchiveSizeWarning
	}
	if limit < 0 || s.Total <= limit {
		return ""
	}
	mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	cause := fmt.Sprintf("mostly clip's index of %d nodes (%s)", nodes, mib(s.Index))
	hint := "an image with fewer files"
	if s.StorageInfo > s.Index {
		cause = fmt.Sprintf("mostly the storage info (%s: checkpoints and image metadata)", mib(s.StorageInfo))
		hint = "a larger --checkpoint-mib"
	}
	if !extSeparate && s.Extension > s.Index && s.Extension > s.StorageInfo {
		cause = fmt.Sprintf("mostly ociclip's resume-point windows (extension section, %s)", mib(s.Extension))
		hint = "--extension-out FILE to write them to a file of their own, or a larger --span-mib"
	}
	return fmt.Sprintf("the archive is %s, more than the %s an image service may accept: %s; index %s, storage info %s, extension %s; try %s",
		mib(s.Total), mib(limit), cause, mib(s.Index), mib(s.StorageInfo), mib(s.Extension), hint)
}
