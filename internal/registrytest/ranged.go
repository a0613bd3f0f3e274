package registrytest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Options change how the registry serves blobs.
type Options struct {
	// Range makes blob GETs honour a "Range: bytes=a-b" (or "bytes=a-")
	// header with a 206 answer and Content-Range, as registries and their
	// blob stores do; go-containerregistry's registry alone ignores Range
	// and sends the whole blob (200), which is what Start keeps.
	Range bool
}

// BlobBytes returns the bytes of blob bodies sent so far for the blob with
// the given digest ("sha256:..."), or for all blobs when digest is "".
func (r *Registry) BlobBytes(digest string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if digest != "" {
		return r.served[digest]
	}
	var n int64
	for _, v := range r.served {
		n += v
	}
	return n
}

// serveBlob serves req with h, counting the body bytes of blob GETs and,
// with Options.Range, cutting the body to the range asked for.
func (r *Registry) serveBlob(h http.Handler, w http.ResponseWriter, req *http.Request) {
	i := strings.LastIndex(req.URL.Path, "/blobs/")
	if req.Method != http.MethodGet || i < 0 || strings.Contains(req.URL.Path, "/uploads/") {
		h.ServeHTTP(w, req)
		return
	}
	d := req.URL.Path[i+len("/blobs/"):]
	cw := &cutWriter{ResponseWriter: w, start: 0, end: -1}
	if rng := req.Header.Get("Range"); r.opts.Range && rng != "" {
		start, end, ok := parseRange(rng)
		if !ok {
			http.Error(w, "bad range "+rng, http.StatusRequestedRangeNotSatisfiable)
			return
		}
		cw.start, cw.end, cw.ranged = start, end, true
	}
	h.ServeHTTP(cw, req)
	r.mu.Lock()
	r.served[d] += cw.sent
	r.mu.Unlock()
}

// parseRange parses "bytes=a-b" or "bytes=a-" (end -1).
func parseRange(s string) (start, end int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes=")
	if !ok || strings.Contains(s, ",") {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	end = -1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return 0, 0, false
		}
	}
	return start, end, true
}

// errRangeDone stops the inner handler's copy once the range is sent.
var errRangeDone = errors.New("range sent")

// cutWriter passes on the bytes [start, end] of the body (all of it when
// not ranged), rewriting a 200 answer to 206 with Content-Range, and counts
// what it sent.
type cutWriter struct {
	http.ResponseWriter
	ranged     bool
	start, end int64 // end -1: to the end
	pos, sent  int64
	size       int64
	status     int
}

func (c *cutWriter) WriteHeader(code int) {
	c.status = code
	if !c.ranged || code != http.StatusOK {
		c.ResponseWriter.WriteHeader(code)
		return
	}
	size, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	if err != nil || c.start >= size {
		c.ranged = false
		c.Header().Del("Content-Length")
		c.ResponseWriter.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		c.status = http.StatusRequestedRangeNotSatisfiable
		return
	}
	if c.end < 0 || c.end >= size {
		c.end = size - 1
	}
	c.size = size
	c.Header().Set("Content-Length", strconv.FormatInt(c.end-c.start+1, 10))
	c.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size))
	c.ResponseWriter.WriteHeader(http.StatusPartialContent)
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.status != http.StatusOK {
		if c.status == http.StatusRequestedRangeNotSatisfiable {
			return 0, errRangeDone
		}
		return c.ResponseWriter.Write(p)
	}
	if !c.ranged {
		n, err := c.ResponseWriter.Write(p)
		c.sent += int64(n)
		return n, err
	}
	lo, hi := c.pos, c.pos+int64(len(p)) // p is body bytes [lo, hi)
	c.pos = hi
	a, b := max(lo, c.start), min(hi, c.end+1)
	if a < b {
		n, err := c.ResponseWriter.Write(p[a-lo : b-lo])
		c.sent += int64(n)
		if err != nil {
			return 0, err
		}
	}
	if hi > c.end {
		return 0, errRangeDone
	}
	return len(p), nil
}
