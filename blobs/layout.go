// Package blobs holds the sources of compressed layer bytes a span engine
// (package spans) reads from: the local image layout ociclip indexed, and
// an OCI distribution registry (ranged GETs of /v2/<repo>/blobs/<digest>).
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/spans"
)

// Layout reads layer blobs from a local image source. It is safe for
// concurrent use.
type Layout struct {
	l    *ociread.Layout
	mu   sync.Mutex
	open map[string]*openBlob
}

type openBlob struct {
	ra   io.ReaderAt
	size int64
	c    io.Closer
}

var (
	_ spans.Source = (*Layout)(nil)
	_ io.Closer    = (*Layout)(nil)
)

// OpenLayout opens an image source: a layout directory or any source
// string ociclip index accepts ("oci:DIR", "oci-archive:FILE", "dir:DIR",
// "docker-archive:FILE"; a ref part is ignored).
func OpenLayout(source string) (*Layout, error) {
	src, err := ociread.ParseSource(source)
	if err != nil {
		return nil, err
	}
	l, err := ociread.OpenSource(src, ociread.OpenOptions{})
	if err != nil {
		return nil, err
	}
	return &Layout{l: l, open: map[string]*openBlob{}}, nil
}

// OpenLayer returns random access to the blob d (the root package's
// BlobOpener); the blob stays open until Close.
func (b *Layout) OpenLayer(d string) (io.ReaderAt, int64, error) {
	ob, err := b.blob(d)
	if err != nil {
		return nil, 0, err
	}
	return ob.ra, ob.size, nil
}

func (b *Layout) blob(d string) (*openBlob, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		return nil, fmt.Errorf("layer digest %q: %w", d, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil {
		return nil, errors.New("blobs: layout closed")
	}
	if ob := b.open[d]; ob != nil {
		return ob, nil
	}
	ra, size, c, err := b.l.OpenBlobAt(dg)
	if err != nil {
		return nil, err
	}
	ob := &openBlob{ra: ra, size: size, c: c}
	b.open[d] = ob
	return ob, nil
}

// OpenRange implements spans.Source.
func (b *Layout) OpenRange(ctx context.Context, d string, off, n int64) (io.ReadCloser, error) {
	ob, err := b.blob(d)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > ob.size {
		return nil, fmt.Errorf("%w: range at %d of the %d-byte blob %s", spans.ErrVerify, off, ob.size, d)
	}
	if n < 0 || n > ob.size-off {
		n = ob.size - off
	}
	return io.NopCloser(io.NewSectionReader(ob.ra, off, n)), nil
}

// OpenVerified streams the blob desc names through the layout's verifying
// reader (size and digest checked, errors naming the blob's file), as
// ociclip index reads it.
func (b *Layout) OpenVerified(desc v1.Descriptor) (io.ReadCloser, error) {
	return b.l.OpenBlob(desc)
}

// Size implements spans.Source.
func (b *Layout) Size(ctx context.Context, d string) (int64, error) {
	ob, err := b.blob(d)
	if err != nil {
		return 0, err
	}
	return ob.size, nil
}

// Close closes the open blob files and the layout.
func (b *Layout) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, ob := range b.open {
		if ob.c != nil {
			errs = append(errs, ob.c.Close())
		}
	}
	b.open = nil
	errs = append(errs, b.l.Close())
	return errors.Join(errs...)
}
