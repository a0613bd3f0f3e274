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
	// DefaultSmallFileSpanBytes is the spacing of resume points in
	// stretches of small files (see Options.SmallFileSpanBytes).
	DefaultSmallFileSpanBytes = 256 << 10
)

// SmallFileSpanFiles is how many files (regular, with data) must start
// between two resume points placed SmallFileSpanBytes apart: a stretch of
// the layer that holds fewer is one of large files, where points are
// SpanBytes apart.
const SmallFileSpanFiles = 8

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
	// SmallFileSpanBytes is the closer spacing of resume points where a
	// layer holds many small files: a point is placed once at least
	// SmallFileSpanBytes of output and SmallFileSpanFiles files have passed
	// since the previous one (and, anywhere, once SpanBytes have). Opening
	// a small file costs inflating from the point before it, so this bounds
	// that cost where most files are, for a window (32 KiB, about 12 KiB in
	// the archive) per point. 0 means DefaultSmallFileSpanBytes; a negative
	// value, or one not below SpanBytes, places points every SpanBytes only.
	SmallFileSpanBytes int64
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

// Normalized returns o with every default filled in: CheckpointMiB,
// SpanBytes and SmallFileSpanBytes at their defaults when zero (a negative
// SpanBytes becomes -1: no resume points; SmallFileSpanBytes becomes -1 when
// negative or not below SpanBytes: points every SpanBytes), and the limits Index applies at their defaults (the
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
	switch {
	case o.SpanBytes < 0:
		o.SmallFileSpanBytes = -1
	case o.SmallFileSpanBytes == 0:
		o.SmallFileSpanBytes = DefaultSmallFileSpanBytes
	}
	if o.SmallFileSpanBytes < 0 || o.SmallFileSpanBytes >= o.SpanBytes {
		o.SmallFileSpanBytes = -1
	}
	n := o.Limits.Normalized()
	// Only the limits Index applies: the others do not change a Result.
	o.Limits = Limits{MaxEntries: n.MaxEntries, MaxPathLen: n.MaxPathLen, MaxUncompressedBytes: n.MaxUncompressedBytes}
	return o
}

func (o *Options) checkpointInterval() int64 {
	return int64(o.Normalized().CheckpointMiB) << 20
}

// spans returns the resume point spacing (0 when there are none) and the
// closer spacing in stretches of small files (0 when not used).
func (o *Options) spans() (span, small int64) {
	n := o.Normalized()
	return max(n.SpanBytes, 0), max(n.SmallFileSpanBytes, 0)
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
