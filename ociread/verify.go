package ociread

import (
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifier streams a blob and checks its size and digest. Errors are sticky.
type verifier struct {
	r          io.Reader
	c          io.Closer // may be nil
	want       digest.Digest
	size       int64
	path       string
	h          hash.Hash
	n          int64
	err        error
	skipDigest bool
}

// newVerifier wraps r, the content of the blob described by desc (whose
// digest must have passed checkDigest and whose size must be >= 0). If r is
// an io.Closer, Close closes it.
func newVerifier(r io.Reader, desc v1.Descriptor, path string, skipDigest bool) *verifier {
	v := &verifier{r: r, want: desc.Digest, size: desc.Size, path: path, h: newHash(desc.Digest), skipDigest: skipDigest}
	if c, ok := r.(io.Closer); ok {
		v.c = c
	}
	return v
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	remaining := v.size - v.n
	if remaining == 0 {
		// All promised bytes arrived; the source must now be at EOF.
		var probe [1]byte
		n, err := io.ReadFull(v.r, probe[:])
		switch {
		case n > 0:
			v.err = fmt.Errorf("%w: blob %s at %s: descriptor size is %d bytes, the blob has more", ErrSizeMismatch, v.want, v.path, v.size)
		case err == io.EOF:
			v.err = v.finish()
		default:
			v.err = fmt.Errorf("reading blob %s at %s: %w", v.want, v.path, err)
		}
		return 0, v.err
	}
	if int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := v.r.Read(p)
	if n < 0 || n > len(p) {
		v.err = fmt.Errorf("reading blob %s at %s: reader returned invalid count %d", v.want, v.path, n)
		return 0, v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case err == io.EOF && v.n < v.size:
		v.err = fmt.Errorf("%w: blob %s at %s: descriptor size is %d bytes, the blob ended after %d bytes", ErrSizeMismatch, v.want, v.path, v.size, v.n)
	case err == io.EOF:
		v.err = v.finish()
	case err != nil:
		v.err = fmt.Errorf("reading blob %s at %s: %w", v.want, v.path, err)
	}
	return n, v.err
}

// finish compares the digest once all bytes have been read and the source
// reported EOF. It returns io.EOF on success.
func (v *verifier) finish() error {
	if v.skipDigest {
		return io.EOF
	}
	alg, _, _ := strings.Cut(string(v.want), ":")
	got := digest.Digest(alg + ":" + hex.EncodeToString(v.h.Sum(nil)))
	if got != v.want {
		return fmt.Errorf("%w: blob at %s: expected %s, actual %s", ErrDigestMismatch, v.path, v.want, got)
	}
	return io.EOF
}

func (v *verifier) Close() error {
	if v.c == nil {
		return nil
	}
	return v.c.Close()
}

// VerifyReader streams r, the content of the blob desc describes, and fails
// a read with ErrSizeMismatch or ErrDigestMismatch (naming where) when it
// is not that blob. For blobs that do not come from a Layout (whose
// OpenBlob verifies the same way).
func VerifyReader(r io.Reader, desc v1.Descriptor, where string) io.ReadCloser {
	if err := checkDigest(desc.Digest); err != nil {
		return errReadCloser{fmt.Errorf("%s: %w", where, err)}
	}
	return newVerifier(r, desc, where, false)
}

// errReadCloser fails every read with err.
type errReadCloser struct{ err error }

func (e errReadCloser) Read([]byte) (int, error) { return 0, e.err }
func (e errReadCloser) Close() error             { return nil }
