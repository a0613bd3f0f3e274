package fuzz

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// repoTestdata is the repository's testdata directory (real layouts written
// by umoci and skopeo).
const repoTestdata = "../testdata"

var ociSentinels = []error{
	ociread.ErrNotLayout, ociread.ErrMalformed, ociread.ErrRefNotFound, ociread.ErrAmbiguous,
	ociread.ErrPlatformNotFound, ociread.ErrUnsupportedMediaType, ociread.ErrBlobMissing,
	ociread.ErrSizeMismatch, ociread.ErrDigestMismatch, ociread.ErrInvalidDigest, ociread.ErrLimit,
	ociread.ErrCycle, ociread.ErrInvalidSource, ociread.ErrInvalidPlatform,
}

var tarSentinels = []error{
	tarindex.ErrUnknownMediaType, tarindex.ErrCompressionMismatch, tarindex.ErrCorrupt,
	tarindex.ErrSparse, tarindex.ErrUnsafePath, tarindex.ErrLimit,
}

var archiveSentinels = []error{archive.ErrBadWhiteout, archive.ErrHardlink, archive.ErrSymlinkLoop, archive.ErrLimit, archive.ErrStorageRef}

var rootSentinels = []error{ociclip.ErrDiffIDMismatch, ociclip.ErrOptions}

// wrapsOneOf reports whether err wraps one of the sentinels.
func wrapsOneOf(err error, sentinels ...[]error) bool {
	for _, ss := range sentinels {
		for _, s := range ss {
			if errors.Is(err, s) {
				return true
			}
		}
	}
	return false
}

// isCtxErr reports a cancellation or deadline.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// checkCleanAbs fails unless p is a clean absolute path inside the root:
// a "/" prefix, a fixed point of path.Clean, no NUL, no ".." component.
func checkCleanAbs(t *testing.T, what, p string) {
	t.Helper()
	if msg := cleanAbsProblem(p); msg != "" {
		t.Fatalf("%s %q: %s", what, p, msg)
	}
}

func cleanAbsProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "not absolute"
	case path.Clean(p) != p:
		return "not clean"
	case strings.IndexByte(p, 0) >= 0:
		return "contains NUL"
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return `has a ".." component`
		}
	}
	return ""
}

// allocBudget fails the test when fn allocates more than max bytes in total
// (runtime.MemStats.TotalAlloc, an upper bound of its peak heap). Fuzz
// workers run one input at a time, so the count is the input's.
func allocBudget(t *testing.T, max uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > max {
		t.Fatalf("allocated %d bytes, budget %d", n, max)
	}
}

// dirEntries lists the names in dir (which must exist).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// readTestdata reads a file below the repository's testdata directory.
func readTestdata(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoTestdata, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// smallBlobs returns the blobs of the repository's testdata layouts that
// are at most max bytes, by layout.
func smallBlobs(tb testing.TB, max int64) map[string][][]byte {
	tb.Helper()
	out := map[string][][]byte{}
	for _, l := range []string{"busybox", "busybox-zstd", "busybox-plain", "umoci-insert"} {
		dir := filepath.Join(repoTestdata, l, "blobs", "sha256")
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if fi, err := d.Info(); err != nil || fi.Size() > max {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[l] = append(out[l], b)
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// subst replaces placeholders in a template.
func subst(b []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		b = bytes.ReplaceAll(b, []byte(kv[i]), []byte(kv[i+1]))
	}
	return b
}

func readFile(tb testing.TB, p string) []byte {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
