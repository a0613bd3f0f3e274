// Package registrytest runs go-containerregistry's in-process OCI registry
// (pkg/registry) on a loopback port for tests, and pushes images from local
// OCI image layouts into it byte for byte (manifests, configs and layer blobs
// keep their digests).
//
// It exists so that tests can run the real consumers of ociclip's output —
// clip's own indexer (clip.CreateFromOCIImage, which only reads from a
// registry) and clip's FUSE mount (which fetches layer blobs from the
// registry recorded in the archive) — without any network beyond 127.0.0.1.
//
//	reg := registrytest.Start(t)
//	ref := reg.PushLayout(t, "testdata/busybox", "1.35", "test/busybox:1.35")
//	// ref == "127.0.0.1:PORT/test/busybox:1.35"
//
// go-containerregistry speaks plain http to 127.0.0.1 registries, so
// references of this form need no TLS or insecure flags.
package registrytest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefNameAnnotation is the index.json annotation that names an image in an
// OCI layout (what `skopeo copy ... oci:DIR:TAG` writes).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Registry is a running in-memory registry listening on 127.0.0.1.
type Registry struct {
	srv  *httptest.Server
	host string // "127.0.0.1:PORT"

	opts Options

	mu       sync.Mutex
	requests []string         // "METHOD PATH" of every request served
	served   map[string]int64 // blob digest -> body bytes sent
}

// Start starts an empty registry on 127.0.0.1:0 and shuts it down in
// t.Cleanup. Register it before anything that talks to it (a FUSE mount,
// say), so that cleanups, which run last-in first-out, stop those first.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options (see Options).
func StartWith(t testing.TB, opts Options) *Registry {
	t.Helper()
	r := &Registry{opts: opts, served: map[string]int64{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		r.serveBlob(h, w, req)
	}))
	// httptest listens on 127.0.0.1:0 (IPv4 loopback) unless -httptest.serve
	// is given; refuse anything else so no other address is ever used.
	r.srv.Start()
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	if !strings.HasPrefix(r.host, "127.0.0.1:") {
		r.srv.Close()
		t.Fatalf("registrytest: test server listens on %q, want 127.0.0.1:PORT", r.host)
	}
	t.Cleanup(r.Close)
	return r
}

// Host returns "127.0.0.1:PORT".
func (r *Registry) Host() string { return r.host }

// Ref returns the full reference of repoTag ("test/NAME:TAG" or
// "test/NAME@sha256:...") in this registry: "127.0.0.1:PORT/test/NAME:TAG".
func (r *Registry) Ref(repoTag string) string { return r.host + "/" + repoTag }

// Close stops the registry. It is idempotent; Start registers it in t.Cleanup.
func (r *Registry) Close() { r.srv.Close() }

// Requests returns "METHOD /v2/..." for every request served so far, in order.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// BlobGets counts GET requests for blobs whose path contains digest (any
// blob when digest is empty).
func (r *Registry) BlobGets(digest string) int {
	n := 0
	for _, q := range r.Requests() {
		if strings.HasPrefix(q, "GET ") && strings.Contains(q, "/blobs/") && strings.Contains(q, digest) {
			n++
		}
	}
	return n
}

// PushLayout pushes one image (or image index) from the OCI layout at dir
// into the registry under repoTag ("test/NAME:TAG") and returns the full
// reference. layoutRef selects the index.json entry: the value of its
// org.opencontainers.image.ref.name annotation, a "sha256:..." digest, or ""
// when index.json has exactly one entry. The manifest is pushed as the raw
// bytes from the layout, so its digest, and every blob's, is unchanged.
func (r *Registry) PushLayout(t testing.TB, dir, layoutRef, repoTag string) string {
	t.Helper()
	full, err := r.pushLayout(dir, layoutRef, repoTag)
	if err != nil {
		t.Fatalf("registrytest: push %s:%s as %s: %v", dir, layoutRef, repoTag, err)
	}
	return full
}

func (r *Registry) pushLayout(dir, layoutRef, repoTag string) (string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return "", err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return "", err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return "", err
	}
	desc, err := selectDescriptor(im.Manifests, layoutRef)
	if err != nil {
		return "", err
	}
	full := r.Ref(repoTag)
	ref, err := name.ParseReference(full, name.StrictValidation)
	if err != nil {
		return "", err
	}
	if desc.MediaType.IsIndex() {
		child, err := ii.ImageIndex(desc.Digest)
		if err != nil {
			return "", err
		}
		err = remote.WriteIndex(ref, child)
		return full, err
	}
	img, err := ii.Image(desc.Digest)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", err
	}
	return full, nil
}

// selectDescriptor picks the index.json entry named by ref.
func selectDescriptor(ds []v1.Descriptor, ref string) (v1.Descriptor, error) {
	if ref == "" {
		if len(ds) != 1 {
			return v1.Descriptor{}, fmt.Errorf("index.json has %d entries; name one", len(ds))
		}
		return ds[0], nil
	}
	var found []v1.Descriptor
	for _, d := range ds {
		if d.Annotations[RefNameAnnotation] == ref || d.Digest.String() == strings.TrimPrefix(ref, "@") {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return v1.Descriptor{}, fmt.Errorf("no index.json entry named %q", ref)
	default:
		return v1.Descriptor{}, fmt.Errorf("%d index.json entries named %q", len(found), ref)
	}
}
