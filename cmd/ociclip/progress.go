package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
)

// Progress display modes of --progress.
const (
	progressAuto  = "auto"  // bars on a terminal, lines otherwise
	progressBars  = "bars"  // progress bars (mpb), as skopeo shows them
	progressLines = "lines" // one line per layer start and finish
	progressNone  = "none"  // nothing
)

// isTerminal reports whether w is a terminal that can show progress bars:
// not TERM=dumb, and with a known width (a pty nobody sized, 0x0, cannot
// lay out bars: lines then).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" || !isatty.IsTerminal(f.Fd()) {
		return false
	}
	return terminalWidth(f) > 0
}

// reporter shows layer progress on stderr and owns stderr while it runs:
// log records go through out so that they do not tear the display.
type reporter interface {
	layer(p ociclip.LayerProgress)
	// finish stops the display; err is the run's error (bars not completed
	// are then shown as aborted).
	finish(err error)
}

// sink is stderr for log records, redirected while bars are drawn.
type sink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *sink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *sink) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func newReporter(mode string, stderr io.Writer, logs *sink) reporter {
	if mode == progressAuto {
		mode = progressLines
		if isTerminal(stderr) {
			mode = progressBars
		}
	}
	switch mode {
	case progressBars:
		return newBarReporter(stderr, logs)
	case progressLines:
		return &lineReporter{w: logs, start: map[int]time.Time{}}
	}
	return nopReporter{}
}

type nopReporter struct{}

func (nopReporter) layer(ociclip.LayerProgress) {}
func (nopReporter) finish(error)                {}

// lineReporter writes one line when a layer's pass starts and one when it
// ends, for logs and pipes:
//
//	layer 1/3 sha256:bdbac3efa91a: indexing 1.0 MiB
//	layer 1/3 sha256:bdbac3efa91a: done, 1.0 MiB in 0.05s (21.2 MB/s), 2.9 MiB uncompressed, 432 entries
//	layer 2/3 sha256:42906f85684d: cached, 12 entries
type lineReporter struct {
	w     io.Writer
	mu    sync.Mutex
	start map[int]time.Time
}

func (r *lineReporter) layer(p ociclip.LayerProgress) {
	name := archive.LayerName(p.LayerIndex, p.TotalLayers, shortDigest(p.LayerDigest))
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case p.Stage == ociclip.StageStarting && !p.Cached:
		r.start[p.LayerIndex] = time.Now()
		fmt.Fprintf(r.w, "%s: indexing %s\n", name, humanBytes(p.CompressedTotal))
	case p.Stage == ociclip.StageCompleted && p.Cached:
		fmt.Fprintf(r.w, "%s: cached, %s\n", name, plural(p.Entries, "entry", "entries"))
	case p.Stage == ociclip.StageCompleted:
		d := time.Since(r.start[p.LayerIndex])
		fmt.Fprintf(r.w, "%s: done, %s in %.2fs (%s), %s uncompressed, %s\n",
			name, humanBytes(p.CompressedRead), d.Seconds(), rate(p.CompressedRead, max(d, time.Microsecond)),
			humanBytes(p.UncompressedRead), plural(p.Entries, "entry", "entries"))
	}
}

func (r *lineReporter) finish(error) {}

// barReporter draws one mpb progress bar per layer: bytes of the blob read,
// throughput and ETA, then "done" or "cached" with the entry count. Log
// records print above the bars. Refreshes are driven by a ticker of ours, so
// that finish can render once more after the last record: mpb renders what
// was written to it only on a refresh.
type barReporter struct {
	p       *mpb.Progress
	refresh chan any
	stop    chan struct{}
	logs    *sink
	w       io.Writer
	mu      sync.Mutex
	bars    map[int]*layerBar
}

type layerBar struct {
	bar  *mpb.Bar
	last time.Time
	mu   sync.Mutex
	done string // shown in place of the counters once complete
}

func newBarReporter(w io.Writer, logs *sink) *barReporter {
	r := &barReporter{refresh: make(chan any), stop: make(chan struct{}), logs: logs, w: w, bars: map[int]*layerBar{}}
	// The container outlives ctx: a cancelled run still ends in finish,
	// which aborts the bars and renders them once more.
	r.p = mpb.New(mpb.WithOutput(w), mpb.WithManualRefresh(r.refresh),
		// Line width when w is not a terminal (--progress bars into a pipe).
		mpb.WithWidth(160))
	go func() {
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				select {
				case r.refresh <- now:
				case <-r.stop:
					return
				}
			case <-r.stop:
				return
			}
		}
	}()
	logs.set(r.p)
	return r
}

func (r *barReporter) get(p ociclip.LayerProgress) *layerBar {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lb := r.bars[p.LayerIndex]; lb != nil {
		return lb
	}
	lb := &layerBar{last: time.Now()}
	status := func(s decor.Statistics) string {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		return lb.done
	}
	name := archive.LayerName(p.LayerIndex, p.TotalLayers, shortDigest(p.LayerDigest))
	lb.bar = r.p.New(p.CompressedTotal,
		mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.BarWidth(40),
		mpb.BarFillerClearOnComplete(),
		mpb.BarPriority(p.LayerIndex),
		mpb.PrependDecorators(
			decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
		),
		mpb.AppendDecorators(
			decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f"), ""),
			decor.OnComplete(decor.Name(" | "), ""),
			decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), ""),
			decor.OnComplete(decor.Name(" | ETA "), ""),
			decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30), ""),
			decor.OnAbort(decor.Any(status), " | aborted"),
		),
	)
	r.bars[p.LayerIndex] = lb
	return lb
}

func (r *barReporter) layer(p ociclip.LayerProgress) {
	switch p.Stage {
	case ociclip.StageStarting:
		if !p.Cached { // a cached layer's bar appears completed
			r.get(p)
		}
	case ociclip.StageIndexing:
		lb := r.get(p)
		lb.mu.Lock()
		now := time.Now()
		d := now.Sub(lb.last)
		lb.last = now
		lb.mu.Unlock()
		lb.bar.EwmaSetCurrent(min(p.CompressedRead, p.CompressedTotal), d)
	case ociclip.StageCompleted:
		lb := r.get(p)
		lb.mu.Lock()
		if p.Cached {
			lb.done = fmt.Sprintf("cached (%s, %s)", humanBytes(p.CompressedTotal), plural(p.Entries, "entry", "entries"))
		} else {
			lb.done = fmt.Sprintf("done (%s, %s)", humanBytes(p.CompressedRead), plural(p.Entries, "entry", "entries"))
		}
		lb.mu.Unlock()
		lb.bar.SetTotal(p.CompressedRead, true)
	}
}

func (r *barReporter) finish(err error) {
	r.mu.Lock()
	for _, lb := range r.bars {
		if !lb.bar.Completed() {
			lb.bar.Abort(false)
		}
	}
	r.mu.Unlock()
	// One more render flushes the records written since the last one.
	r.refresh <- time.Now()
	r.p.Wait()
	close(r.stop)
	r.logs.set(r.w)
}

// logHandler formats log records for a terminal or a log file, one line
// each: "warning: MSG key=value ...", with values quoted as slog's text
// handler quotes them.
type logHandler struct {
	inner slog.Handler
	out   *prefixWriter
}

type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
}

// Write receives one record from the inner text handler (its attributes,
// newline-terminated) and writes it after the prefix.
func (p *prefixWriter) Write(b []byte) (int, error) {
	attrs := strings.TrimRight(string(b), "\n")
	line := p.prefix
	if attrs != "" {
		line += " " + attrs
	}
	_, err := io.WriteString(p.w, line+"\n")
	return len(b), err
}

var _ slog.Handler = (*logHandler)(nil)

func newLogHandler(w io.Writer, level slog.Level) *logHandler {
	out := &prefixWriter{w: w}
	inner := slog.NewTextHandler(out, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}})
	return &logHandler{inner: inner, out: out}
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = levelName(r.Level) + ": " + strings.ReplaceAll(r.Message, "\n", " ")
	return h.inner.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{inner: h.inner.WithAttrs(as), out: h.out}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{inner: h.inner.WithGroup(name), out: h.out}
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// parseLevel parses --log-level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: --log-level must be debug, info, warn or error, got %q", errUsage, s)
}
