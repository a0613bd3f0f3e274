package tarindex

import (
	"context"
	"fmt"
)

// Default values used when the corresponding Options or Limits field is zero.
const (
	DefaultCheckpointMiB        = 2
	DefaultSpanBytes            = 4 << 20
	DefaultMaxEntries           = 1_000_000
	DefaultMaxPathLen           = 4096
	DefaultMaxUncompressedBytes = 1 << 40
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
	blockEnd func(be blockEnd, drift int64)
	// mode selects the pipeline (0: default, 1: single goroutine, 2: two
	// goroutines); used by benchmarks to compare the two.
	mode int
}

// Limits bound the resources one layer may claim. A zero field means its
// default; exceeding a limit fails Index with an error wrapping ErrLimit that
// names the limit.
type Limits struct {
	MaxEntries           int   // tar entries (headers), default DefaultMaxEntries
	MaxPathLen           int   // bytes of an entry name or link target, default DefaultMaxPathLen
	MaxUncompressedBytes int64 // uncompressed stream length, default DefaultMaxUncompressedBytes
}

// Progress reports how far Index is into a layer.
type Progress struct {
	CompressedBytes   int64 // blob bytes read so far
	UncompressedBytes int64 // uncompressed bytes walked so far
	Entries           int   // tar entries recorded so far
}

func (o *Options) checkpointInterval() int64 {
	if o.CheckpointMiB <= 0 {
		return DefaultCheckpointMiB << 20
	}
	return int64(o.CheckpointMiB) << 20
}

func (o *Options) span() int64 {
	switch {
	case o.SpanBytes == 0:
		return DefaultSpanBytes
	case o.SpanBytes < 0:
		return 0
	}
	return o.SpanBytes
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = DefaultMaxPathLen
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	return l
}

func limitErr(name string, limit int64, what string) error {
	return fmt.Errorf("%w: %s %d: %s", ErrLimit, name, limit, what)
}

// ctxErr returns ctx's error wrapped so that errors.Is(err, context.Canceled)
// (or DeadlineExceeded) holds.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tarindex: %w", err)
	}
	return nil
}
