// Package ociread reads and verifies a local OCI image layout: the directory
// that `skopeo copy docker://IMG oci:DIR:TAG` or umoci writes (oci-layout,
// index.json, blobs/<alg>/<hex>).
//
// Open checks the oci-layout file and parses index.json. Resolve picks one
// image — by ref name (the org.opencontainers.image.ref.name annotation), by
// digest, or the only image — follows nested image indexes (Docker manifest
// lists included) to the wanted platform, and returns the parsed manifest and
// config. Every blob is read through a reader that verifies size and digest,
// and every JSON document is size-capped before it is read (see Limits).
//
// The package never panics on malformed input. Every error wraps one of the
// Err* sentinels (check with errors.Is) and names the file, digest, ref or
// path at fault. A Layout is immutable after Open and safe for concurrent use.
package ociread

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Default limits.
const (
	DefaultMaxJSONBytes  = 8 << 20
	DefaultMaxIndexDepth = 8
)

// Limits bound what the reader accepts. Zero or negative fields mean the
// default.
type Limits struct {
	// MaxJSONBytes caps the size of oci-layout, index.json and of every
	// manifest, config and nested index blob. Default 8 MiB.
	MaxJSONBytes int64
	// MaxIndexDepth caps how many image indexes may be nested below
	// index.json (an index referenced from index.json is at depth 1).
	// Default 8.
	MaxIndexDepth int
}

func (l Limits) withDefaults() Limits {
	if l.MaxJSONBytes <= 0 {
		l.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if l.MaxIndexDepth <= 0 {
		l.MaxIndexDepth = DefaultMaxIndexDepth
	}
	return l
}

// OpenOptions configures Open.
type OpenOptions struct {
	Limits Limits
}

// Layout is an opened OCI image layout. It is immutable and safe for
// concurrent use.
type Layout struct {
	dir       string
	indexPath string
	index     v1.Index
	limits    Limits

	// skipDigestCheck disables the digest comparison of the verifying
	// reader (sizes are still checked). Only tests set it, to build
	// layouts that content addressing makes impossible (index cycles).
	skipDigestCheck bool
}

// Open checks that dir is an OCI image layout (an oci-layout file with
// imageLayoutVersion "1.0.0") and parses its index.json (size-capped by
// Limits.MaxJSONBytes, schemaVersion 2). Descriptors inside index.json are
// validated only when Resolve uses them, so one bad entry does not make the
// other images unreadable.
func Open(dir string, opts OpenOptions) (*Layout, error) {
	l := &Layout{dir: dir, limits: opts.Limits.withDefaults()}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotLayout, dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNotLayout, dir)
	}

	layoutPath := filepath.Join(dir, v1.ImageLayoutFile)
	data, err := l.readSmallFile(layoutPath)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	var hdr v1.ImageLayout
	if err := decodeObject(data, &hdr); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotLayout, layoutPath, err)
	}
	if hdr.Version != v1.ImageLayoutVersion {
		return nil, fmt.Errorf("%w: %s: imageLayoutVersion is %q, want %q", ErrNotLayout, layoutPath, short(hdr.Version), v1.ImageLayoutVersion)
	}

	l.indexPath = filepath.Join(dir, v1.ImageIndexFile)
	data, err = l.readSmallFile(l.indexPath)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	if err := decodeObject(data, &l.index); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, l.indexPath, err)
	}
	if l.index.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: %s: schemaVersion is %d, want 2", ErrMalformed, l.indexPath, l.index.SchemaVersion)
	}
	switch mt := l.index.MediaType; {
	case mt == "" || isIndexMediaType(mt):
	case isManifestMediaType(mt):
		return nil, fmt.Errorf("%w: %s: mediaType is %q, want %q", ErrMalformed, l.indexPath, mt, v1.MediaTypeImageIndex)
	default:
		return nil, fmt.Errorf("%w: %s: mediaType %q", ErrUnsupportedMediaType, l.indexPath, short(mt))
	}
	return l, nil
}

// Dir returns the layout directory as given to Open.
func (l *Layout) Dir() string { return l.dir }

// Index returns a copy of the parsed index.json.
func (l *Layout) Index() v1.Index {
	ix := l.index
	ix.Manifests = make([]v1.Descriptor, len(l.index.Manifests))
	for i, d := range l.index.Manifests {
		ix.Manifests[i] = cloneDescriptor(d)
	}
	ix.Annotations = cloneMap(l.index.Annotations)
	if l.index.Subject != nil {
		s := cloneDescriptor(*l.index.Subject)
		ix.Subject = &s
	}
	return ix
}

// Refs returns the distinct ref names (org.opencontainers.image.ref.name
// annotations) of index.json, in index.json order.
func (l *Layout) Refs() []string {
	var refs []string
	seen := map[string]bool{}
	for _, d := range l.index.Manifests {
		r := d.Annotations[v1.AnnotationRefName]
		if r != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	return refs
}

// BlobPath returns the path of the blob with digest d, after checking that d
// is a valid sha256 or sha512 digest (ErrInvalidDigest otherwise).
func (l *Layout) BlobPath(d digest.Digest) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", err
	}
	alg, enc, _ := strings.Cut(string(d), ":")
	return filepath.Join(l.dir, v1.ImageBlobsDir, alg, enc), nil
}

// checkDescriptor validates the digest and size of a descriptor; what names
// it in errors.
func checkDescriptor(desc v1.Descriptor, what string) error {
	if desc.Digest == "" {
		return fmt.Errorf("%w: %s: descriptor has no digest", ErrMalformed, what)
	}
	if err := checkDigest(desc.Digest); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if desc.Size < 0 {
		return fmt.Errorf("%w: %s %s: negative size %d", ErrMalformed, what, desc.Digest, desc.Size)
	}
	return nil
}

// OpenBlob opens the blob of desc and returns a reader that verifies it while
// it is read. The blob must be a regular file whose length equals desc.Size
// (checked at open, ErrSizeMismatch). While reading, it returns
// ErrSizeMismatch as soon as more than desc.Size bytes arrive or EOF comes
// early, and ErrDigestMismatch at EOF if the digest differs; both messages
// name the digest, the path, the expected and the actual values. It never
// returns io.EOF before verification passed. A missing (or unreadable, or
// non-regular) file gives ErrBlobMissing, a bad digest ErrInvalidDigest, a negative size
// ErrMalformed.
func (l *Layout) OpenBlob(desc v1.Descriptor) (io.ReadCloser, error) {
	if err := checkDescriptor(desc, "blob"); err != nil {
		return nil, err
	}
	path, err := l.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, st, err := openRegular(path)
	if err != nil {
		// Absent, not a regular file, or not readable: the blob is not
		// available. The wrapped error tells which.
		return nil, fmt.Errorf("%w: blob %s: %w", ErrBlobMissing, desc.Digest, err)
	}
	if st.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("%w: blob %s at %s: descriptor size is %d bytes, file has %d bytes",
			ErrSizeMismatch, desc.Digest, path, desc.Size, st.Size())
	}
	return newVerifier(f, desc, path, l.skipDigestCheck), nil
}

// ReadBlob reads the whole blob of desc, verified as OpenBlob does. It
// refuses blobs whose descriptor size exceeds max with ErrLimit, before
// reading anything.
func (l *Layout) ReadBlob(desc v1.Descriptor, max int64) ([]byte, error) {
	if err := checkDescriptor(desc, "blob"); err != nil {
		return nil, err
	}
	if desc.Size > max {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, more than the limit of %d bytes", ErrLimit, desc.Digest, desc.Size, max)
	}
	rc, err := l.OpenBlob(desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, desc.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	// Drain to EOF: the verifier reports the digest only there. It never
	// yields more than desc.Size bytes, so this loop ends after one or two
	// calls.
	var probe [1]byte
	for i := 0; ; i++ {
		n, err := rc.Read(probe[:])
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if n > 0 || i > 100 {
			return nil, fmt.Errorf("%w: blob %s: reader went past %d bytes", ErrSizeMismatch, desc.Digest, desc.Size)
		}
	}
}

var errNotRegular = errors.New("not a regular file")

// openRegular opens path for reading without blocking on FIFOs and without
// accepting anything but a regular file (after following symlinks).
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (mode %s)", path, errNotRegular, st.Mode().Type())
	}
	return f, st, nil
}

// readSmallFile reads a layout file (oci-layout, index.json), refusing
// files larger than MaxJSONBytes with ErrLimit.
func (l *Layout) readSmallFile(path string) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	max := l.limits.MaxJSONBytes
	if st.Size() > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than MaxJSONBytes=%d", ErrLimit, path, st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s grew past MaxJSONBytes=%d while being read", ErrLimit, path, max)
	}
	return data, nil
}

// decodeObject parses data, which must be a single JSON object, into v. The
// returned error does not wrap a sentinel; callers add one and the file name.
func decodeObject(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return errors.New("empty document, want a JSON object")
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("want a JSON object, document starts with %q", trimmed[0])
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func clonePlatform(p *v1.Platform) *v1.Platform {
	if p == nil {
		return nil
	}
	c := *p
	c.OSFeatures = append([]string(nil), p.OSFeatures...)
	return &c
}

func cloneDescriptor(d v1.Descriptor) v1.Descriptor {
	d.URLs = append([]string(nil), d.URLs...)
	d.Annotations = cloneMap(d.Annotations)
	d.Data = append([]byte(nil), d.Data...)
	d.Platform = clonePlatform(d.Platform)
	return d
}
