package ociclip

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ociclip/ociclip/layercache"
	"github.com/ociclip/ociclip/tarindex"
)

// errCacheOff: the run stopped using the layer cache after it failed once
// (already reported as a warning).
var errCacheOff = errors.New("layer cache off for the rest of this run")

// openCache returns the layer cache of the options (nil for none), guarded
// by a cacheGuard.
func openCache(opts Options) (layercache.Store, error) {
	var s layercache.Store
	switch {
	case opts.CacheDir != "" && opts.Cache != nil:
		return nil, fmt.Errorf("%w: set CacheDir or Cache, not both", ErrOptions)
	case opts.CacheDir != "":
		c, err := layercache.Open(opts.CacheDir)
		if err != nil {
			return nil, err
		}
		s = layercache.Dir{Cache: c}
	case opts.Cache != nil:
		s = opts.Cache
	default:
		return nil, nil
	}
	return &cacheGuard{s: s}, nil
}

// cacheGuard keeps a failing cache from slowing a run down: after the first
// Get or Put that fails with layercache.ErrUnavailable (the cache is down,
// or did not answer within its timeout), every later call returns
// errCacheOff at once, and the layers are indexed from their blobs.
type cacheGuard struct {
	s   layercache.Store
	off atomic.Bool
}

func (g *cacheGuard) Get(ctx context.Context, k layercache.Key) (*tarindex.Result, error) {
	if g.off.Load() {
		return nil, errCacheOff
	}
	r, err := g.s.Get(ctx, k)
	return r, g.check(err)
}

func (g *cacheGuard) Put(ctx context.Context, k layercache.Key, r *tarindex.Result) error {
	if g.off.Load() {
		return errCacheOff
	}
	return g.check(g.s.Put(ctx, k, r))
}

func (g *cacheGuard) Location(k layercache.Key) string { return g.s.Location(k) }

// check turns the cache off on an ErrUnavailable, saying so in the error.
func (g *cacheGuard) check(err error) error {
	if !errors.Is(err, layercache.ErrUnavailable) {
		return err
	}
	if g.off.Swap(true) {
		return errCacheOff
	}
	return fmt.Errorf("%w; indexing without the layer cache for the rest of this run", err)
}
