package layercache

import (
	"context"
	"errors"

	"github.com/ociclip/ociclip/tarindex"
)

// ErrUnavailable: the cache could not be reached in time (a network error,
// a timeout, a refused request). The caller indexes the layer without the
// cache; the entry itself is not known to be bad.
var ErrUnavailable = errors.New("layercache: cache unavailable")

// Store is a layer-index cache: results of the per-layer pass by Key. Every
// implementation verifies an entry when reading it (the format in the
// package documentation) and writes entries so that a reader never sees a
// partial one, whatever number of writers of one key run at once.
//
// Get returns an error wrapping ErrNotFound when there is no entry,
// ErrCorrupt when the entry failed verification (a miss: the caller
// indexes the layer and Put replaces it), ErrUnavailable when the cache
// could not be reached in time, or another error. Both methods give up when
// ctx is done.
type Store interface {
	Get(ctx context.Context, k Key) (*tarindex.Result, error)
	Put(ctx context.Context, k Key, r *tarindex.Result) error
	// Location names where the entry for k is (or would be), for messages.
	Location(k Key) string
}

// Dir is the Store of a cache directory (Open).
type Dir struct{ *Cache }

var _ Store = Dir{}

// Get is Cache.Get; it returns ctx's error when ctx is done.
func (d Dir) Get(ctx context.Context, k Key) (*tarindex.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.Cache.Get(k)
}

// Put is Cache.Put; it returns ctx's error when ctx is done.
func (d Dir) Put(ctx context.Context, k Key, r *tarindex.Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.Cache.Put(k, r)
}

// Location is Cache.Path.
func (d Dir) Location(k Key) string { return d.Cache.Path(k) }
