// Package ociread reads and verifies a local OCI image: an OCI image layout
// directory (what `skopeo copy docker://IMG oci:DIR:TAG` or umoci writes:
// oci-layout, index.json, blobs/<alg>/<hex>), or, through ParseSource and
// OpenSource, the same layout inside a tar file (oci-archive:), `docker
// save` output (docker-archive:) or a containers/image dir: directory.
// Archives are read in place, never extracted; every source is presented
// as a Layout with an index.json, so that resolution and verification are
// the same for all.
//
// Open checks the oci-layout file and parses index.json. Resolve picks one
// image — by ref name (the org.opencontainers.image.ref.name annotation, or
// another name of the entry, see Select), by digest, or the only image —
// follows nested image indexes (Docker manifest lists included) to the
// wanted platform, and returns the parsed manifest and config. Every blob is
// read through a reader that verifies size and digest, and every JSON
// document is size-capped before it is read (see Limits).
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
	"sync"
	"syscall"

	"github.com/ociclip/ociclip/limits"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits bound what the reader accepts: it applies MaxJSONBytes and
// MaxIndexDepth (zero means the default); exceeding one is a *limits.Error
// (errors.Is(err, ErrLimit)).
type Limits = limits.Limits

// OpenOptions configures Open and OpenSource.
type OpenOptions struct {
	Limits Limits
}

// Layout is an opened image source: an OCI image layout directory (Open),
// or any source OpenSource accepts (an OCI layout in a tar, a docker-archive,
// a containers/image dir: directory), presented as an OCI layout with an
// index.json. It is immutable and safe for concurrent use. Layouts of
// archive sources hold the archive open until Close.
type Layout struct {
	src       Source
	dir       string // the path given: a directory, or the archive file
	indexPath string // names index.json (or what stands for it) in messages
	index     v1.Index
	limits    Limits
	st        store

	// names lists, per index.json entry, further names Select.Ref
	// matches besides the ref name annotation: io.containerd.image.name
	// and, for docker-archive, the manifest.json RepoTags (see Select).
	names [][]string
	// numbered maps the docker-archive ref "@N" (manifest.json entry N) to
	// an index.json entry, -1 if that entry could not be mapped. It is nil
	// for sources without manifest.json entries.
	numbered []int

	closeOnce sync.Once
	closeErr  error

	// skipDigestCheck disables the digest comparison of the verifying
	// reader (sizes are still checked). Only tests set it, to build
	// layouts that content addressing makes impossible (index cycles).
	skipDigestCheck bool
}

// Open checks that dir is an OCI image layout (an oci-layout file with
// imageLayoutVersion "1.0.0") and parses its index.json (size-capped by
// Limits.MaxJSONBytes, schemaVersion 2). Descriptors inside index.json are
// validated only when Resolve uses them, so one bad entry does not make the
// other images unreadable. Open(dir, opts) is OpenSource(Source{Transport:
// TransportOCI, Path: dir}, opts).
func Open(dir string, opts OpenOptions) (*Layout, error) {
	l := &Layout{
		src:    Source{Transport: TransportOCI, Path: dir},
		dir:    dir,
		limits: opts.Limits.Normalized(),
		st:     dirStore{dir: dir},
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotLayout, dir, err)
	}
	if !st.IsDir() {
		hint := ""
		if st.Mode().IsRegular() {
			hint = " (for a tar file use oci-archive:PATH or docker-archive:PATH)"
		}
		return nil, fmt.Errorf("%w: %s is not a directory%s", ErrNotLayout, dir, hint)
	}
	if err := l.loadOCI(); err != nil {
		return nil, err
	}
	return l, nil
}

// loadOCI reads oci-layout and index.json from the store and fills in
// l.index, l.indexPath and l.names.
func (l *Layout) loadOCI() error {
	data, where, err := l.st.file(v1.ImageLayoutFile, l.limits.MaxJSONBytes)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	var hdr v1.ImageLayout
	if err := decodeObject(data, &hdr); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotLayout, where, err)
	}
	if hdr.Version != v1.ImageLayoutVersion {
		return fmt.Errorf("%w: %s: imageLayoutVersion is %q, want %q", ErrNotLayout, where, short(hdr.Version), v1.ImageLayoutVersion)
	}

	data, l.indexPath, err = l.st.file(v1.ImageIndexFile, l.limits.MaxJSONBytes)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotLayout, err)
	}
	if err := decodeObject(data, &l.index); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, l.indexPath, err)
	}
	if l.index.SchemaVersion != 2 {
		return fmt.Errorf("%w: %s: schemaVersion is %d, want 2", ErrMalformed, l.indexPath, l.index.SchemaVersion)
	}
	switch mt := l.index.MediaType; {
	case mt == "" || isIndexMediaType(mt):
	case isManifestMediaType(mt):
		return fmt.Errorf("%w: %s: mediaType is %q, want %q", ErrMalformed, l.indexPath, mt, v1.MediaTypeImageIndex)
	default:
		return fmt.Errorf("%w: %s: mediaType %q", ErrUnsupportedMediaType, l.indexPath, short(mt))
	}
	l.names = make([][]string, len(l.index.Manifests))
	for i, d := range l.index.Manifests {
		if n := d.Annotations[AnnotationContainerdImageName]; n != "" {
			l.names[i] = []string{n}
		}
	}
	return nil
}

// Dir returns the path given to Open or OpenSource: the layout directory,
// the dir: directory or the archive file.
func (l *Layout) Dir() string { return l.dir }

// Source returns the source the layout was opened from (Transport and Path;
// Ref as given to OpenSource).
func (l *Layout) Source() Source { return l.src }

// Close releases the archive file of oci-archive and docker-archive
// sources; readers from OpenBlob fail after it. It is a no-op for
// directories, and calling it again returns nil.
func (l *Layout) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.st.close() })
	return l.closeErr
}

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

// Refs returns the distinct names Select.Ref accepts as a name, in
// index.json order: the ref names (org.opencontainers.image.ref.name
// annotations) of index.json, each followed by the entry's other names
// (io.containerd.image.name annotations; for docker-archive sources the
// manifest.json RepoTags). For a docker-archive written in the legacy
// format, whose index.json is synthesized, these are the RepoTags.
func (l *Layout) Refs() []string {
	var refs []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for i, d := range l.index.Manifests {
		add(d.Annotations[v1.AnnotationRefName])
		if i < len(l.names) {
			for _, n := range l.names[i] {
				add(n)
			}
		}
	}
	return refs
}

// BlobPath returns the path of the blob with digest d, after checking that d
// is a valid sha256 or sha512 digest (ErrInvalidDigest otherwise). Blobs of
// archive sources are not files: for them BlobPath fails with
// ErrBlobMissing (use OpenBlob). For a dir: source it is DIR/<hex>.
func (l *Layout) BlobPath(d digest.Digest) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", err
	}
	switch st := l.st.(type) {
	case nil, dirStore:
		return dirStore{dir: l.dir}.blobPath(d), nil
	case *dirTransportStore:
		return st.blobPath(d), nil
	}
	return "", fmt.Errorf("%w: blob %s is a member of the archive %s, not a file; use OpenBlob", ErrBlobMissing, d, l.dir)
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
	b, err := l.st.blob(desc.Digest)
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) {
			return nil, err // names the archive entry; wraps a sentinel
		}
		// Absent, not a regular file, or not readable: the blob is not
		// available. The wrapped error tells which.
		return nil, fmt.Errorf("%w: blob %s: %w", ErrBlobMissing, desc.Digest, err)
	}
	if b.size != desc.Size {
		closeReader(b.r)
		return nil, fmt.Errorf("%w: blob %s at %s: descriptor size is %d bytes, file has %d bytes",
			ErrSizeMismatch, desc.Digest, b.where, desc.Size, b.size)
	}
	return newVerifier(b.r, desc, b.where, l.skipDigestCheck), nil
}

// ReadBlob reads the whole blob of desc, verified as OpenBlob does. It
// refuses blobs whose descriptor size exceeds max with ErrLimit, before
// reading anything.
func (l *Layout) ReadBlob(desc v1.Descriptor, max int64) ([]byte, error) {
	if err := checkDescriptor(desc, "blob"); err != nil {
		return nil, err
	}
	if desc.Size > max {
		return nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("blob %s is %d bytes", desc.Digest, desc.Size))
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

// readSmallFile reads a regular file, refusing files larger than max
// (MaxJSONBytes) with ErrLimit.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > max {
		return nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("%s is %d bytes", path, st.Size()))
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, limits.New("MaxJSONBytes", max, fmt.Sprintf("%s grew past it while being read", path))
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

// OpenBlobAt opens the blob d for random access, for readers that serve
// files from a layer through an index. Random access cannot verify a
// digest, so the content is not checked here (the caller verifies what it
// reads, e.g. against the checksums recorded when the layer was indexed);
// size is the stored length. Close the returned io.Closer when done.
func (l *Layout) OpenBlobAt(d digest.Digest) (io.ReaderAt, int64, io.Closer, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, nil, err
	}
	b, err := l.st.blob(d)
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) {
			return nil, 0, nil, err
		}
		return nil, 0, nil, fmt.Errorf("%w: blob %s: %w", ErrBlobMissing, d, err)
	}
	ra, ok := b.r.(io.ReaderAt)
	if !ok {
		closeReader(b.r)
		return nil, 0, nil, fmt.Errorf("%w: blob %s at %s does not support random access", ErrBlobMissing, d, b.where)
	}
	c, _ := b.r.(io.Closer)
	if c == nil {
		c = io.NopCloser(nil)
	}
	return ra, b.size, c, nil
}
