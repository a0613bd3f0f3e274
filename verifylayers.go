package ociclip

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/ociread"
)

// ErrLayerDamaged: Verify could not replay a layer: its blob does not match
// its digest or size (the error then also wraps ociread.ErrDigestMismatch
// or ociread.ErrSizeMismatch, as indexing reports it), or it does not
// decompress or parse. The files of that layer are not checked.
var ErrLayerDamaged = errors.New("layer damaged")

// layerDescriptor is what the archive says of layer d's blob: its size from
// the image metadata or the extension section, else the blob's own size (then
// only its digest is checked).
func (r *Reader) layerDescriptor(d string) (v1.Descriptor, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer digest %q: %w", d, err)
	}
	desc := v1.Descriptor{Digest: dg, Size: -1}
	if md := r.a.Storage.ImageMetadata; md != nil {
		for _, l := range md.LayersData {
			if l.Digest == d {
				desc.Size, desc.MediaType = l.Size, l.MIMEType
			}
		}
	}
	if ext := r.a.Extension; desc.Size < 0 && ext != nil {
		for _, l := range ext.Layers {
			if l.Digest == d {
				desc.Size = l.Size
			}
		}
	}
	if desc.Size < 0 {
		size, err := r.src.Size(context.Background(), d)
		if err != nil {
			return v1.Descriptor{}, err
		}
		desc.Size = size
	}
	return desc, nil
}

// replayVerified replays layer d (the index-th of total) from a stream that
// verifies the blob's size and digest: the replay's files, or an error
// wrapping ErrLayerDamaged that names the layer and says first whether the
// blob does not match its descriptor, as indexing does.
func (r *Reader) replayVerified(ctx context.Context, index, total int, d string, seed maphash.Seed) (map[int64]replayedFile, error) {
	damaged := func(err error) error {
		return &layerDamage{name: archive.LayerName(index, total, d), err: err}
	}
	desc, err := r.layerDescriptor(d)
	if err != nil {
		return nil, damaged(err)
	}
	rc, err := r.openVerified(ctx, desc)
	if err != nil {
		return nil, damaged(err)
	}
	defer rc.Close()
	files, err := replayLayer(rc, seed)
	if err != nil {
		return nil, damaged(blobFault(ctx, rc, err))
	}
	// The tar may end before the blob does (padding, a missing end
	// marker): the digest is only known at the blob's end.
	if _, err := io.Copy(io.Discard, ctxReader{ctx, rc}); err != nil {
		return nil, damaged(err)
	}
	return files, nil
}

// layerDamage is a layer Verify could not replay: "layer 2/3 sha256:…:
// cause", wrapping ErrLayerDamaged and the cause.
type layerDamage struct {
	name string
	err  error
}

func (e *layerDamage) Error() string   { return e.name + ": " + e.err.Error() }
func (e *layerDamage) Unwrap() []error { return []error{ErrLayerDamaged, e.err} }

// verifiedOpener is a blob source that also streams a blob through its own
// reader that verifies size and digest (a layout's, which names the file).
type verifiedOpener interface {
	OpenVerified(desc v1.Descriptor) (io.ReadCloser, error)
}

// openVerified streams the blob of desc through a reader that fails with
// ociread.ErrSizeMismatch or ErrDigestMismatch when it is not the blob desc
// names.
func (r *Reader) openVerified(ctx context.Context, desc v1.Descriptor) (io.ReadCloser, error) {
	if vo, ok := r.src.(verifiedOpener); ok {
		return vo.OpenVerified(desc)
	}
	rc, err := r.src.OpenRange(ctx, desc.Digest.String(), 0, -1)
	if err != nil {
		return nil, err
	}
	return readCloser{ociread.VerifyReader(rc, desc, "layer blob "+desc.Digest.String()), rc}, nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (rc readCloser) Close() error { return rc.c.Close() }
