package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/spans"
)

// ErrRegistry: the registry answered a blob request with an error status
// (after the retries), or not at all.
var ErrRegistry = errors.New("registry request failed")

// RegistryOptions configure a Registry source. The zero value is usable.
type RegistryOptions struct {
	// Keychain resolves credentials (nil: authn.DefaultKeychain, which
	// reads docker's config and is anonymous without one).
	Keychain authn.Keychain
	// Transport is the base HTTP transport (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// Retries is how many times a failed request (401, 404, 408, 429, 5xx,
	// a network error or timeout) is tried again (0: 4; negative: none),
	// with exponential backoff from RetryBackoff (0: 200ms).
	Retries      int
	RetryBackoff time.Duration
	// RequestTimeout bounds each attempt up to the response headers (0:
	// 30s). The body is bounded by the caller's context.
	RequestTimeout time.Duration
	// Logf receives the warning, once per layer, that the registry ignores
	// Range requests. nil: silent.
	Logf func(format string, args ...any)
}

// Registry reads layer blobs from an OCI distribution registry with ranged
// GETs of /v2/<repository>/blobs/<digest>, through go-containerregistry's
// transport (anonymous, basic or bearer token authentication from the
// keychain); redirects to blob storage are followed with the Range header.
// A registry that ignores Range (200 with the whole blob) still works: the
// body is read up to the offset wanted, and a warning is logged once per
// layer. It is safe for concurrent use.
type Registry struct {
	repo name.Repository
	opts RegistryOptions

	mu     sync.Mutex
	client *http.Client // nil until the first request, and after a 401
	warned map[string]bool
	sizes  map[string]int64
}

var _ spans.Source = (*Registry)(nil)

// NewRegistry returns a source reading the blobs of repository repo
// ("registry.example.com/team/image", "127.0.0.1:5000/test/busybox"; a
// tag or digest is ignored). Nothing is requested before the first read.
func NewRegistry(repo string, opts RegistryOptions) (*Registry, error) {
	if ref, err := name.ParseReference(repo); err == nil {
		repo = ref.Context().Name()
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		return nil, fmt.Errorf("registry repository %q: %w", repo, err)
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	return &Registry{repo: r, opts: opts, warned: map[string]bool{}, sizes: map[string]int64{}}, nil
}

// Repository returns the repository's full name.
func (r *Registry) Repository() string { return r.repo.Name() }

// httpClient returns the authenticating client, setting it up (the
// registry ping and token exchange) on first use.
func (r *Registry) httpClient(ctx context.Context) (*http.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		return r.client, nil
	}
	auth, err := r.opts.Keychain.Resolve(r.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", r.repo, err)
	}
	rt, err := transport.NewWithContext(ctx, r.repo.Registry, auth, r.opts.Transport, []string{r.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	r.client = &http.Client{Transport: rt}
	return r.client, nil
}

func (r *Registry) resetClient() {
	r.mu.Lock()
	r.client = nil
	r.mu.Unlock()
}

func (r *Registry) blobURL(d string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.repo.Registry.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), d)
}

// retryable reports whether a status is worth another try.
func retryable(code int) bool {
	return code == http.StatusUnauthorized || code == http.StatusNotFound || code == http.StatusRequestTimeout ||
		code == http.StatusTooManyRequests || code >= 500
}

// do sends method on the blob d with the given Range header ("" for none),
// retrying with backoff, and returns a response with status 200 or 206
// whose body the caller closes.
func (r *Registry) do(ctx context.Context, method, d, rng string) (*http.Response, error) {
	if _, err := digest.Parse(d); err != nil {
		return nil, fmt.Errorf("layer digest %q: %w", d, err)
	}
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt > max(r.opts.Retries, 0) {
				return nil, fmt.Errorf("%w: %s %s: %v (after %d attempts)", ErrRegistry, method, r.blobURL(d), last, attempt)
			}
			backoff := r.opts.RetryBackoff << min(attempt-1, 6)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %s %s: %v (then %v)", ErrRegistry, method, r.blobURL(d), last, ctx.Err())
			}
		}
		resp, err := r.try(ctx, method, d, rng)
		if err == nil {
			return resp, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrRegistry, method, r.blobURL(d), err)
		}
		var se *statusError
		if errors.As(err, &se) && !retryable(se.code) {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrRegistry, method, r.blobURL(d), err)
		}
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }

// try is one attempt of do. The attempt's timeout bounds the time to the
// response headers; the body is then bounded by ctx alone (the span
// engine's fetch timeout).
func (r *Registry) try(ctx context.Context, method, d, rng string) (*http.Response, error) {
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(r.opts.RequestTimeout, cancel)
	fail := func(err error) (*http.Response, error) {
		timer.Stop()
		cancel()
		return nil, err
	}
	c, err := r.httpClient(rctx)
	if err != nil {
		return fail(err)
	}
	req, err := http.NewRequestWithContext(rctx, method, r.blobURL(d), nil)
	if err != nil {
		return fail(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fail(err)
	}
	if !timer.Stop() {
		resp.Body.Close()
		return fail(fmt.Errorf("no response headers within %v", r.opts.RequestTimeout))
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	cancel()
	if resp.StatusCode == http.StatusUnauthorized {
		r.resetClient() // an expired token: set up again
	}
	return nil, &statusError{resp.StatusCode}
}

// cancelBody releases the request's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// OpenRange implements spans.Source.
func (r *Registry) OpenRange(ctx context.Context, d string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("%w: negative offset %d", spans.ErrVerify, off)
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n >= 0 {
		if n == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	if off == 0 && n < 0 {
		rng = ""
	}
	resp, err := r.do(ctx, http.MethodGet, d, rng)
	if err != nil {
		return nil, err
	}
	body := resp.Body
	if resp.StatusCode == http.StatusPartialContent {
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			body.Close()
			return nil, fmt.Errorf("%w: blob %s: asked for bytes from %d, the registry sent Content-Range %q", spans.ErrVerify, d, off, resp.Header.Get("Content-Range"))
		}
	} else if rng != "" {
		// 200: the whole blob. Read on to the offset.
		r.mu.Lock()
		warn := !r.warned[d]
		r.warned[d] = true
		r.mu.Unlock()
		if warn && r.opts.Logf != nil {
			r.opts.Logf("ociclip: registry %s ignores Range requests: reading layer %s from its start to each span it needs", r.repo.RegistryStr(), d)
		}
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			body.Close()
			return nil, fmt.Errorf("%w: blob %s: skipping to %d of a full response: %v", spans.ErrVerify, d, off, err)
		}
	}
	if n < 0 {
		return body, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(body, n), body}, nil
}

// contentRangeStart parses the first byte of "bytes a-b/size".
func contentRangeStart(s string) (int64, bool) {
	s, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(a, 10, 64)
	return v, err == nil
}

// Size implements spans.Source with a HEAD request (kept per digest).
func (r *Registry) Size(ctx context.Context, d string) (int64, error) {
	r.mu.Lock()
	size, ok := r.sizes[d]
	r.mu.Unlock()
	if ok {
		return size, nil
	}
	size, err := r.headSize(ctx, d)
	if err != nil && ctx.Err() == nil {
		// Blob stores behind redirects may refuse HEAD (a presigned GET
		// URL): ask for the first byte and read the total from
		// Content-Range.
		var gerr error
		if size, gerr = r.getSize(ctx, d); gerr != nil {
			return 0, errors.Join(err, gerr)
		}
	} else if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.sizes[d] = size
	r.mu.Unlock()
	return size, nil
}

func (r *Registry) headSize(ctx context.Context, d string) (int64, error) {
	resp, err := r.do(ctx, http.MethodHead, d, "")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("%w: HEAD %s: no Content-Length", ErrRegistry, r.blobURL(d))
	}
	return resp.ContentLength, nil
}

func (r *Registry) getSize(ctx context.Context, d string) (int64, error) {
	resp, err := r.do(ctx, http.MethodGet, d, "bytes=0-0")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 {
		return resp.ContentLength, nil
	}
	cr := resp.Header.Get("Content-Range")
	if _, total, ok := strings.Cut(cr, "/"); ok {
		if n, err := strconv.ParseInt(total, 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: GET %s: no size in Content-Range %q", ErrRegistry, r.blobURL(d), cr)
}
