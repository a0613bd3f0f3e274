package e2e_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/s3test"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layercache"
)

// openBlobCache starts gofakes3 on 127.0.0.1 and returns it with a
// layercache.Blob client of its bucket.
func openBlobCache(t *testing.T, timeout time.Duration) (*s3test.Server, *layercache.Blob) {
	t.Helper()
	srv := s3test.Start(t)
	srv.SetEnv(t)
	b, err := layercache.OpenBlob(context.Background(), srv.URL(), layercache.BlobOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return srv, b
}

// Through the object store, a warm run takes every layer from the bucket
// and writes the same bytes as a run without a cache.
func TestBlobCacheColdWarm(t *testing.T) {
	srv, b := openBlobCache(t, 0)
	opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", StorageImageRef: testimage.BusyboxStorageRef, Concurrency: 1}
	_, want := indexArchive(t, opts)
	opts.Cache = b
	cold, got := indexArchive(t, opts)
	if cold.CachedLayers != 0 || !bytes.Equal(got, want) || srv.Count("PUT", "/"+s3test.Bucket+"/sha256-") != 3 {
		t.Fatalf("cold run: %d cached, same bytes %v, requests %v", cold.CachedLayers, bytes.Equal(got, want), srv.Requests())
	}
	warm, got := indexArchive(t, opts)
	if warm.CachedLayers != 3 || !bytes.Equal(got, want) || len(warm.Warnings) != 0 {
		t.Errorf("warm run: %d cached, same bytes %v, warnings %q", warm.CachedLayers, bytes.Equal(got, want), warm.Warnings)
	}
}

// The cache server stopped in the middle of a run: one warning, the other
// layers indexed from their blobs, and the archive a run without a cache
// writes.
func TestBlobCacheServerStoppedMidRun(t *testing.T) {
	srv, b := openBlobCache(t, 2*time.Second)
	opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", StorageImageRef: testimage.BusyboxStorageRef, Concurrency: 1}
	_, want := indexArchive(t, opts)
	opts.Cache = b
	opts.LayerProgress = func(p ociclip.LayerProgress) {
		if p.Stage == ociclip.StageCompleted {
			srv.Close() // after the first layer: its Put was served, the rest is down
		}
	}
	start := time.Now()
	res, got := indexArchive(t, opts)
	if !bytes.Equal(got, want) {
		t.Error("the archive differs from a run without a cache")
	}
	w := cacheWarnings(res)
	if len(w) != 1 || !strings.Contains(w[0], "unavailable") || !strings.Contains(w[0], "without the layer cache") {
		t.Errorf("cache warnings %q, want one saying the cache is unavailable", w)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %v", d)
	}
	if n := srv.Count("GET", "/"+s3test.Bucket+"/"); n != 1 {
		t.Errorf("%d GETs reached the server, want the first layer's only", n)
	}
}

// A cache slower than its timeout costs one timeout, not one per layer.
func TestBlobCacheSlow(t *testing.T) {
	srv, b := openBlobCache(t, 300*time.Millisecond)
	srv.SetDelay(3 * time.Second)
	opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", StorageImageRef: testimage.BusyboxStorageRef, Concurrency: 1}
	_, want := indexArchive(t, opts)
	opts.Cache = b
	start := time.Now()
	res, got := indexArchive(t, opts)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the run took %v with a 300ms cache timeout", d)
	}
	if !bytes.Equal(got, want) {
		t.Error("the archive differs from a run without a cache")
	}
	if w := cacheWarnings(res); len(w) != 1 || !strings.Contains(w[0], "no answer within 300ms") {
		t.Errorf("cache warnings %q", w)
	}
}
