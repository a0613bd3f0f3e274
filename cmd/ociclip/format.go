package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ociclip/ociclip"
)

// plural renders a count with the singular or plural noun: "1 entry",
// "2 entries", "0 entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// rate renders a throughput in decimal units (B/s, kB/s, MB/s, GB/s) with
// a unit that keeps small rates readable: a tiny layer read in a
// millisecond is "512.0 kB/s", not "0.5 MB/s" or "0.0 MB/s". A zero or
// negative duration gives "".
func rate(bytes int64, d time.Duration) string {
	s := d.Seconds()
	if s <= 0 {
		return ""
	}
	r := float64(bytes) / s
	switch {
	case r >= 1e9:
		return fmt.Sprintf("%.1f GB/s", r/1e9)
	case r >= 1e6:
		return fmt.Sprintf("%.1f MB/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f kB/s", r/1e3)
	}
	return fmt.Sprintf("%.0f B/s", r)
}

// printIndexSummary prints index's text summary: what was written, then the
// manifest digest.
func printIndexSummary(w io.Writer, res *ociclip.Result, cached bool) {
	layers := plural(res.Layers, "layer", "layers")
	if cached {
		layers += fmt.Sprintf(" (%d cached)", res.CachedLayers)
	}
	speed := ""
	if r := rate(res.UncompressedBytes, res.Duration); r != "" && res.CachedLayers == 0 {
		speed = " (" + r + ")"
	}
	fmt.Fprintf(w, "wrote %s: %s, %s (%s, %s, %s, %s), %s uncompressed in %.2fs%s\n",
		res.OutputPath, layers, plural(res.Nodes, "node", "nodes"), plural(res.Files, "file", "files"), plural(res.Dirs, "dir", "dirs"),
		plural(res.Symlinks, "symlink", "symlinks"), plural(res.HardLinks, "hard link", "hard links"),
		humanBytes(res.UncompressedBytes), res.Duration.Seconds(), speed)
}

// printVerifySummary prints verify's last line: files checked, bytes read,
// mismatches and, when any, damaged layers and the files not checked.
func printVerifySummary(w io.Writer, res *ociclip.VerifyResult) {
	fmt.Fprintf(w, "verified %s, %s read through the index, %s", plural(res.Files, "file", "files"), humanBytes(res.Bytes),
		plural(len(res.Mismatches), "mismatch", "mismatches"))
	if len(res.DamagedLayers) > 0 {
		fmt.Fprintf(w, ", %s (%s not checked)", plural(len(res.DamagedLayers), "damaged layer", "damaged layers"), plural(res.Unchecked, "file", "files"))
	}
	fmt.Fprintln(w)
}
