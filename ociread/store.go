package ociread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// store serves the files and blobs of one image source. The resolution and
// verification code (Resolve, OpenBlob, ReadBlob) only talks to a store, so
// it works the same over a layout directory, the members of a tar file, a
// dir: directory and documents synthesized from a docker-archive.
type store interface {
	// blob opens the stored bytes of the blob d, a digest that passed
	// checkDigest. An absent blob, or one that is not a regular file, is
	// an error (OpenBlob wraps it in ErrBlobMissing unless it is a
	// *sourceError, which already wraps a sentinel).
	blob(d digest.Digest) (storedBlob, error)
	// file reads a metadata file of the source (oci-layout, index.json,
	// manifest.json, version) by its slash-separated name, refusing more
	// than max bytes with ErrLimit. The error for a missing file wraps
	// fs.ErrNotExist. where names the file in messages.
	file(name string, max int64) (data []byte, where string, err error)
	// close releases what the store holds open.
	close() error
}

// storedBlob is an opened blob: its content (closed by the verifier if it is
// an io.Closer), its stored size and its name in messages (a path, or
// FILE!/member for a tar member).
type storedBlob struct {
	r     io.Reader
	size  int64
	where string
}

// sourceError is an error about a blob that was found wanting when the
// source was opened (a docker-archive entry whose config or layer is
// missing): it already wraps a sentinel and is returned from OpenBlob as is.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func closeReader(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// dirStore is an OCI image layout directory: blobs/<alg>/<hex>.
type dirStore struct{ dir string }

func (s dirStore) blobPath(d digest.Digest) string {
	alg, enc, _ := strings.Cut(string(d), ":")
	return filepath.Join(s.dir, v1.ImageBlobsDir, alg, enc)
}

func (s dirStore) blob(d digest.Digest) (storedBlob, error) {
	return openFileBlob(s.blobPath(d))
}

func (s dirStore) file(name string, max int64) ([]byte, string, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	data, err := readSmallFile(p, max)
	return data, p, err
}

func (dirStore) close() error { return nil }

func openFileBlob(path string) (storedBlob, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return storedBlob{}, err
	}
	return storedBlob{r: f, size: st.Size(), where: path}, nil
}

// dirTransportStore is a containers/image dir: directory: manifest.json
// (the image manifest or, after `skopeo copy --all`, the manifest list),
// per-instance manifests as <hex>.manifest.json, and every other blob as
// <hex>.
type dirTransportStore struct {
	dir      string
	manifest []byte
	md       digest.Digest // of manifest
}

func (s *dirTransportStore) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, d.Encoded())
}

func (s *dirTransportStore) blob(d digest.Digest) (storedBlob, error) {
	if d == s.md {
		return storedBlob{r: bytes.NewReader(s.manifest), size: int64(len(s.manifest)), where: filepath.Join(s.dir, "manifest.json")}, nil
	}
	b, err := openFileBlob(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		// An instance manifest of a copied manifest list.
		if b2, err2 := openFileBlob(s.blobPath(d) + ".manifest.json"); err2 == nil {
			return b2, nil
		}
	}
	return b, err
}

func (s *dirTransportStore) file(name string, max int64) ([]byte, string, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	data, err := readSmallFile(p, max)
	return data, p, err
}

func (*dirTransportStore) close() error { return nil }

// errMissing builds the error for an absent file or member.
func errMissing(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, fs.ErrNotExist)...)
}
