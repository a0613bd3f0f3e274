package tarindex

import (
	"context"
	"fmt"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/limits"
)

// Default values used when the corresponding Options field is zero (the
// limits' defaults are in package limits).
const (
	DefaultCheckpointMiB = 2
	DefaultSpanBytes     = 4 << 20
)

// Options configure Index.
type Options struct {
	// MediaType is the layer media type (OCI or Docker). It decides the
	// compression, which the magic bytes of the blob must confirm. An empty
	// media type means: detect the compression from the magic bytes.
	MediaType string
	// CheckpointMiB is the interval of clip-form gzip checkpoints in MiB of
	// uncompressed output; 0 means DefaultCheckpointMiB.
	CheckpointMiB int
	// SpanBytes is the minimum spacing, in uncompressed bytes, of resumable
	// gzip checkpoints (ResumePoints); 0 means DefaultSpanBytes, a negative
	// value disables them.
	SpanBytes int64
	// Limits bound what a layer may hold.
	Limits Limits
	// Progress, when set, is called from the goroutine that called Index
	// about every MiB of compressed input and once at the end.
	Progress func(Progress)

	// blockEnd is a test hook called (from the inflating goroutine) for
	// every deflate block end with its corrected blob offset and the
	// correction applied to flate's CompressedOffset.
	blockEnd func(be layerz.BlockEnd, drift int64)
	// mode selects the pipeline (0: default, 1: single goroutine, 2: two
	// goroutines); used by benchmarks to compare the two.
	mode int
}

// Limits bound the resources one layer may claim: Index applies MaxEntries,
// MaxPathLen and MaxUncompressedBytes (zero means the default); exceeding
// one fails Index with a *limits.Error (errors.Is(err, ErrLimit)).
type Limits = limits.Limits

// Progress reports how far Index is into a layer.
type Progress struct {
	CompressedBytes   int64 // blob bytes read so far
	UncompressedBytes int64 // uncompressed bytes walked so far
	Entries           int   // tar entries recorded so far
}

// Normalized returns o with every default filled in: CheckpointMiB and
// SpanBytes at their defaults when zero (a negative SpanBytes becomes -1:
// no resume points), and the limits Index applies at their defaults (the
// other Limits fields cleared). Index behaves the same for o
// and o.Normalized(); a cache of results keys on the normalized options, so
// that spelling a default out and leaving it zero are the same key.
func (o Options) Normalized() Options {
	if o.CheckpointMiB <= 0 {
		o.CheckpointMiB = DefaultCheckpointMiB
	}
	switch {
	case o.SpanBytes == 0:
		o.SpanBytes = DefaultSpanBytes
	case o.SpanBytes < 0:
		o.SpanBytes = -1
	}
	n := o.Limits.Normalized()
	// Only the limits Index applies: the others do not change a Result.
	o.Limits = Limits{MaxEntries: n.MaxEntries, MaxPathLen: n.MaxPathLen, MaxUncompressedBytes: n.MaxUncompressedBytes}
	return o
}

func (o *Options) checkpointInterval() int64 {
	return int64(o.Normalized().CheckpointMiB) << 20
}

// span is the resume point spacing, 0 when there are none.
func (o *Options) span() int64 {
	return max(o.Normalized().SpanBytes, 0)
}

func limitErr(name string, limit int64, what string) error {
	return limits.New(name, limit, what)
}

// ctxErr returns ctx's error wrapped so that errors.Is(err, context.Canceled)
// (or DeadlineExceeded) holds.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tarindex: %w", err)
	}
	return nil
}
