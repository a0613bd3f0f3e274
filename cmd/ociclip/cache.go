package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/ociclip/ociclip/layercache"
)

// cacheFlagsUsage documents --cache and --cache-timeout (part of index's usage).
const cacheFlagsUsage = `With --cache URL, the layer cache is a bucket that every worker of a fleet
shares (same keys and checks as --cache-dir): s3://BUCKET[?region=R&endpoint=URL],
azblob://CONTAINER or file:///DIR (gs://BUCKET in a binary built with -tags
ociclip_gcs; ociclip version lists the schemes), with each cloud SDK's usual
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
	if err := checkCacheScheme(url); err != nil {
		return nil, nil, err
	}
	s, err := layercache.OpenURL(ctx, url, layercache.BlobOptions{Timeout: timeout})
	if err != nil {
		return nil, nil, err
	}
	c, _ := s.(io.Closer)
	return s, c, nil
}

// optionalSchemes are the --cache URL schemes whose drivers the default
// build leaves out, with the build tag that links each (drivers_*.go).
var optionalSchemes = map[string]string{"gs": "ociclip_gcs"}

// checkCacheScheme explains a --cache URL whose scheme this build lacks
// because its driver is opt-in (otherwise gocloud's "no driver registered"
// would leave the reader guessing); other URLs go to layercache.OpenURL.
func checkCacheScheme(url string) error {
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		return nil
	}
	scheme = strings.ToLower(scheme)
	tag, optional := optionalSchemes[scheme]
	if !optional || blob.DefaultURLMux().ValidBucketScheme(scheme) {
		return nil
	}
	return fmt.Errorf("--cache %s://...: this ociclip is built without the %s:// driver (its SDK adds about 16 MiB to every run's memory); build it with go build -tags %s ./cmd/ociclip, or use one of %s",
		scheme, scheme, tag, strings.Join(cacheSchemes(), ", "))
}

// cacheSchemes returns the --cache URL schemes this build opens, as
// "s3://" and so on, sorted.
func cacheSchemes() []string {
	var out []string
	for _, s := range blob.DefaultURLMux().BucketSchemes() {
		out = append(out, s+"://")
	}
	sort.Strings(out)
	return out
}

// extensionNote describes where the extension section went, for the
// summary line.
func extensionNote(extOut string, n int64) string {
	if extOut == "" {
		return fmt.Sprintf(" (%s of it resume points)", humanBytes(n))
	}
	return fmt.Sprintf(", resume points %s in %s", humanBytes(n), extOut)
}
