package blobs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ociclip/ociclip/blobs"
)

type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// faulty wraps go-containerregistry's registry: the first fail blob
// requests get status code (or, with code 0, no answer for delay).
type faulty struct {
	h     http.Handler
	fail  atomic.Int64
	code  int
	delay time.Duration
	seen  atomic.Int64
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/blobs/sha256:") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		f.seen.Add(1)
		if f.fail.Add(-1) >= 0 {
			if f.code == 0 {
				select {
				case <-time.After(f.delay):
				case <-r.Context().Done():
				}
				return
			}
			w.WriteHeader(f.code)
			return
		}
	}
	f.h.ServeHTTP(w, r)
}

// start runs the registry with one random layer pushed and returns the
// repository and the layer's digest and bytes.
func start(t *testing.T) (*faulty, string, string, []byte) {
	t.Helper()
	f := &faulty{h: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/test/blobs"
	l, err := random.Layer(300<<10, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(r, l); err != nil {
		t.Fatal(err)
	}
	f.seen.Store(0) // the push's own HEAD
	d, _ := l.Digest()
	rc, _ := l.Compressed()
	b, _ := io.ReadAll(rc)
	return f, repo, d.String(), b
}

func readRange(t *testing.T, src *blobs.Registry, d string, off, n int64) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := src.OpenRange(ctx, d, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestRegistryRetries: 5xx, 401 and unanswered requests are retried with
// backoff and then succeed; a blob the registry does not have fails after
// the bounded retries, quickly.
func TestRegistryRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  int
		delay time.Duration
	}{{"503", http.StatusServiceUnavailable, 0}, {"401", http.StatusUnauthorized, 0}, {"timeout", 0, 5 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			f, repo, d, blob := start(t)
			f.code, f.delay = tc.code, tc.delay
			f.fail.Store(2)
			src, err := blobs.NewRegistry(repo, blobs.RegistryOptions{Keychain: anonymous{}, RetryBackoff: 10 * time.Millisecond, RequestTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got, err := readRange(t, src, d, 1000, 5000)
			if err != nil || !bytes.Equal(got, blob[1000:6000]) {
				t.Fatalf("after 2 failures: %d bytes, %v", len(got), err)
			}
			if n := f.seen.Load(); n != 3 {
				t.Errorf("%d blob requests, want 3", n)
			}
		})
	}
	t.Run("404", func(t *testing.T) {
		f, repo, _, _ := start(t)
		src, err := blobs.NewRegistry(repo, blobs.RegistryOptions{Keychain: anonymous{}, Retries: 3, RetryBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		missing := "sha256:" + strings.Repeat("ab", 32)
		start := time.Now()
		if _, err := readRange(t, src, missing, 0, 10); !errors.Is(err, blobs.ErrRegistry) {
			t.Errorf("err = %v, want ErrRegistry", err)
		}
		if n := f.seen.Load(); n != 4 {
			t.Errorf("%d requests, want 1 + 3 retries", n)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v", time.Since(start))
		}
	})
}

// TestRegistryRange: without Range support in the registry (go-containerregistry's
// registry sends the whole blob), OpenRange still returns the bytes asked
// for, and Size is the blob's.
func TestRegistryRange(t *testing.T) {
	_, repo, d, blob := start(t)
	var warned atomic.Int64
	src, err := blobs.NewRegistry(repo, blobs.RegistryOptions{Keychain: anonymous{}, Logf: func(string, ...any) { warned.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 10}, {12345, 100}, {int64(len(blob)) - 7, 7}, {500, -1}} {
		got, err := readRange(t, src, d, r[0], r[1])
		end := int64(len(blob))
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		if err != nil || !bytes.Equal(got, blob[r[0]:end]) {
			t.Errorf("range %v: %d bytes, %v", r, len(got), err)
		}
	}
	if warned.Load() != 1 {
		t.Errorf("%d warnings, want 1", warned.Load())
	}
	if n, err := src.Size(context.Background(), d); err != nil || n != int64(len(blob)) {
		t.Errorf("Size = %d, %v; want %d", n, err, len(blob))
	}
}
