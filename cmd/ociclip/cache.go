package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ociclip/ociclip/layercache"
	_ "github.com/ociclip/ociclip/layercache/clouddrivers" // s3://, gs://, azblob://, file:// for --cache
)

// cacheFlagsUsage documents --cache and --cache-timeout (part of index's usage).
const cacheFlagsUsage = `With --cache URL, the layer cache is a bucket that every worker of a fleet
shares (same keys and checks as --cache-dir): s3://BUCKET[?region=R&endpoint=URL],
gs://BUCKET, azblob://CONTAINER, file:///DIR, with each cloud SDK's usual
credentials from the environment. A cache that fails or does not answer within
--cache-timeout (default 10s) never fails the run: ociclip warns and indexes
the remaining layers without it.
`

// openCacheFlag opens the layer cache --cache names (nil, nil for none)
// and returns what releases it.
func openCacheFlag(ctx context.Context, url, dir string, timeout time.Duration) (layercache.Store, io.Closer, error) {
	if url == "" {
		return nil, nil, nil
	}
	if dir != "" {
		return nil, nil, fmt.Errorf("%w: give --cache or --cache-dir, not both", errUsage)
	}
	if timeout < 0 {
		return nil, nil, fmt.Errorf("%w: --cache-timeout must not be negative, got %v", errUsage, timeout)
	}
	s, err := layercache.OpenURL(ctx, url, layercache.BlobOptions{Timeout: timeout})
	if err != nil {
		return nil, nil, err
	}
	c, _ := s.(io.Closer)
	return s, c, nil
}

// extensionNote describes where the extension section went, for the
// summary line.
func extensionNote(extOut string, n int64) string {
	if extOut == "" {
		return fmt.Sprintf(" (%s of it resume points)", humanBytes(n))
	}
	return fmt.Sprintf(", resume points %s in %s", humanBytes(n), extOut)
}
