package spans

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// diskPath returns where span i of l is kept under the cache directory, or
// "" without one (or for a digest that is not a valid path component).
func (e *Engine) diskPath(l *layer, i int) string {
	if e.opts.CacheDir == "" {
		return ""
	}
	d, err := digest.Parse(l.digest)
	if err != nil || strings.ContainsAny(d.Encoded(), `/\.`) {
		return ""
	}
	return filepath.Join(e.opts.CacheDir, d.Algorithm().String(), d.Encoded(), fmt.Sprintf("%d-%d", l.bounds[i], l.bounds[i+1]))
}

// loadDisk returns span i from the disk cache, or nil when it is not
// there. A cached span that fails its checksums is removed and fetched
// again.
func (e *Engine) loadDisk(l *layer, i int) ([]byte, error) {
	p := e.diskPath(l, i)
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil
	}
	if int64(len(b)) != l.bounds[i+1]-l.bounds[i] || l.verify(b, l.bounds[i]) != nil {
		e.logf("ociclip: removing damaged cache file %s", p)
		os.Remove(p)
		return nil, nil
	}
	return b, nil
}

// storeDisk writes span i to the disk cache (write to a temporary file,
// then rename, so that a reader never sees a partial span). Failures only
// cost a later fetch: they are logged, not returned.
func (e *Engine) storeDisk(l *layer, i int, b []byte) {
	p := e.diskPath(l, i)
	if p == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.logf("ociclip: span cache: %v", err)
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		e.logf("ociclip: span cache: %v", err)
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		e.logf("ociclip: span cache: writing %s: %v", p, errors.Join(werr, cerr))
		return
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		e.logf("ociclip: span cache: %v", err)
	}
}
