// Package s3test runs github.com/johannesboyne/gofakes3, an S3-compatible
// server written by others, on a loopback port for tests and benchmarks of
// the object-store layer cache, and counts the requests it serves.
//
//	srv := s3test.Start(t)
//	srv.SetEnv(t)                       // AWS credentials for the SDK
//	store, err := layercache.OpenBlob(ctx, srv.URL(), layercache.BlobOptions{})
//
// gofakes3 keeps objects in memory (backend s3mem) and implements the parts
// of S3 the cache uses: GetObject, PutObject and multipart uploads, whose
// objects appear only when the upload completes. It does not check
// signatures, so any credentials do.
package s3test

import (
	"fmt"
	_ "gocloud.dev/blob/fileblob" // file:// URLs in tests
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs of the test server
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Bucket is the bucket every Server starts with.
const Bucket = "ociclip-cache"

// Server is a running gofakes3 server on 127.0.0.1.
type Server struct {
	srv *httptest.Server

	bytesIn, bytesOut atomic.Int64 // request and response body bytes

	mu       sync.Mutex
	requests []string      // "METHOD /bucket/key?query" of every request served
	delay    time.Duration // added before serving each request
	hook     func(*http.Request)
}

// New starts a server with an empty bucket named Bucket. Close stops it.
func New() (*Server, error) {
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		return nil, err
	}
	h := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
		delay, hook := s.delay, s.hook
		s.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		r.Body = &countingBody{ReadCloser: r.Body, n: &s.bytesIn}
		w = &countingWriter{ResponseWriter: w, n: &s.bytesOut}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	if !strings.HasPrefix(s.srv.URL, "http://127.0.0.1:") {
		s.srv.Close()
		return nil, fmt.Errorf("s3test: server listens on %s, want 127.0.0.1", s.srv.URL)
	}
	return s, nil
}

// Start starts a server and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Endpoint returns "http://127.0.0.1:PORT".
func (s *Server) Endpoint() string { return s.srv.URL }

// URL returns the gocloud.dev/blob URL of the bucket (path-style requests
// over plain HTTP to the endpoint).
func (s *Server) URL() string {
	return "s3://" + Bucket + "?endpoint=" + s.srv.URL + "&region=us-east-1&use_path_style=true&disable_https=true"
}

// Env returns the environment the AWS SDK needs to talk to the server:
// static credentials and no shared config files of the machine.
func Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=s3test", "AWS_SECRET_ACCESS_KEY=s3test", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		// gofakes3 sends no response checksums; real S3 does.
		"AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
	}
}

// SetEnv sets Env for the rest of the test.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// SetDelay makes the server wait d before serving each request (a slow
// cache).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetHook calls f with every request before it is served (nil: none). f
// runs on the server's goroutine for the request and may block it.
func (s *Server) SetHook(f func(*http.Request)) {
	s.mu.Lock()
	s.hook = f
	s.mu.Unlock()
}

// Requests returns "METHOD /bucket/key?query" for every request served so
// far, in order of arrival.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Count returns how many requests with method had a path containing part.
func (s *Server) Count(method, part string) int {
	n := 0
	for _, r := range s.Requests() {
		if m, rest, _ := strings.Cut(r, " "); m == method && strings.Contains(rest, part) {
			n++
		}
	}
	return n
}

// Bytes returns the body bytes received (uploads) and sent (downloads)
// so far.
func (s *Server) Bytes() (in, out int64) { return s.bytesIn.Load(), s.bytesOut.Load() }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Close stops the server, breaking open connections: the cache is down.
// It is idempotent.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}
