package layercache

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/ociclip/ociclip/tarindex"
)

// DefaultTimeout bounds one Get or Put of a Blob store when
// BlobOptions.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultMaxEntryBytes bounds the size of an entry a Blob store reads when
// BlobOptions.MaxEntryBytes is zero (an entry of a layer of a million files
// is about 60 MiB).
const DefaultMaxEntryBytes = 1 << 30

// BlobOptions configures a Blob store.
type BlobOptions struct {
	// Timeout bounds each Get and Put, connection and transfer included
	// (default DefaultTimeout). Past it the operation fails with
	// ErrUnavailable.
	Timeout time.Duration
	// MaxEntryBytes bounds the entries Get reads (default
	// DefaultMaxEntryBytes); a larger object is ErrCorrupt.
	MaxEntryBytes int64
}

// Blob is a Store in object storage, through gocloud.dev/blob: an S3 or
// S3-compatible bucket (s3://), Google Cloud Storage (gs://), Azure Blob
// Storage (azblob://) or a local directory (file://). Entries have the
// format and the names of a directory cache; an object is only visible
// once completely uploaded, so a writer that dies mid-upload leaves no
// entry, and concurrent writers of one key each replace the object whole
// (both write a valid entry for the key). Every entry is verified on Get.
type Blob struct {
	bucket *blob.Bucket
	url    string // for messages, without query or credentials
	opts   BlobOptions
}

var _ Store = (*Blob)(nil)

// OpenBlob opens the bucket named by a gocloud.dev/blob URL, such as
// "s3://bucket?region=eu-west-1", "gs://bucket", "azblob://container" or
// "file:///var/cache/ociclip". Credentials come from each cloud SDK's
// standard environment (see the README). Opening does not contact the
// service; the first Get or Put does.
func OpenBlob(ctx context.Context, rawURL string, o BlobOptions) (*Blob, error) {
	b, err := blob.OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("layercache: opening %s: %w", redact(rawURL), err)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
	}
	return &Blob{bucket: b, url: redact(rawURL), opts: o}, nil
}

// OpenURL opens the Store a --cache argument names: a URL (anything with
// "://") through OpenBlob, anything else as a cache directory (Open). The
// URL's scheme needs its driver registered: import
// github.com/ociclip/ociclip/layercache/clouddrivers (or a single
// gocloud.dev/blob driver) for its side effects.
func OpenURL(ctx context.Context, s string, o BlobOptions) (Store, error) {
	if strings.Contains(s, "://") {
		return OpenBlob(ctx, s, o)
	}
	c, err := Open(s)
	if err != nil {
		return nil, err
	}
	return Dir{c}, nil
}

// redact returns u without its query and user information.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// Close releases the bucket.
func (b *Blob) Close() error { return b.bucket.Close() }

// Location returns the entry's URL (without the query).
func (b *Blob) Location(k Key) string { return strings.TrimSuffix(b.url, "/") + "/" + k.name() }

// Get reads and verifies the entry for k.
func (b *Blob) Get(ctx context.Context, k Key) (*tarindex.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	r, err := b.bucket.NewReader(ctx, k.name(), nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%w for %s", ErrNotFound, k.Digest)
		}
		return nil, b.fault(ctx, "reading", k, err)
	}
	defer r.Close()
	if r.Size() > b.opts.MaxEntryBytes {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrCorrupt, b.Location(k), r.Size(), b.opts.MaxEntryBytes)
	}
	data, err := io.ReadAll(io.LimitReader(r, b.opts.MaxEntryBytes+1))
	if err != nil {
		return nil, b.fault(ctx, "reading", k, err)
	}
	res, err := decode(data, k.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, b.Location(k), err)
	}
	return res, nil
}

// Put uploads the entry for k. An upload that fails or times out is
// aborted: no object is created.
func (b *Blob) Put(ctx context.Context, k Key, r *tarindex.Result) error {
	if r == nil {
		return fmt.Errorf("layercache: nil result")
	}
	data, err := encode(k.String(), r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	if err := b.bucket.WriteAll(ctx, k.name(), data, &blob.WriterOptions{ContentType: "application/octet-stream", MaxConcurrency: 1}); err != nil {
		return b.fault(ctx, "writing", k, err)
	}
	return nil
}

// fault wraps an error of the bucket in ErrUnavailable, or in
// context.Canceled when the caller's context was cancelled. ctx is the
// operation's context (with the timeout).
func (b *Blob) fault(ctx context.Context, what string, k Key, err error) error {
	switch ctx.Err() {
	case context.Canceled:
		return fmt.Errorf("layercache: %s %s: %w", what, b.Location(k), context.Canceled)
	case context.DeadlineExceeded:
		return fmt.Errorf("%w: %s %s: no answer within %v", ErrUnavailable, what, b.Location(k), b.opts.Timeout)
	}
	return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, what, b.Location(k), err)
}
