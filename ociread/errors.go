package ociread

import (
	"errors"

	"github.com/ociclip/ociclip/limits"
)

// Sentinel errors. Every error returned by this package wraps one of these
// (check with errors.Is); the message around it names the file, digest, ref
// or path at fault.
var (
	// ErrNotLayout: the directory is missing or not a directory, the
	// oci-layout file is missing, unreadable or unparsable, its
	// imageLayoutVersion is not "1.0.0", or index.json is missing; for
	// archive sources also: the file is not a (complete, uncompressed) tar
	// or lacks the members its transport needs; for dir: sources, the
	// directory has no manifest.json or a foreign version file.
	ErrNotLayout = errors.New("ociread: not an OCI image layout")
	// ErrMalformed: JSON that does not parse, lacks required fields, has a
	// wrong schemaVersion or carries impossible values (negative sizes,
	// diff_ids that do not match the layers).
	ErrMalformed = errors.New("ociread: malformed")
	// ErrRefNotFound: no manifest with the wanted ref name or digest. The
	// message lists the refs and digests that exist.
	ErrRefNotFound = errors.New("ociread: ref not found")
	// ErrAmbiguous: no ref was given and index.json holds more than one
	// image. The message lists the refs.
	ErrAmbiguous = errors.New("ociread: ambiguous image selection")
	// ErrPlatformNotFound: no image manifest for the wanted platform. The
	// message lists the platforms that exist (os/arch[/variant]).
	ErrPlatformNotFound = errors.New("ociread: platform not found")
	// ErrUnsupportedMediaType: a manifest, index, config or layer media type
	// that ociclip cannot handle.
	ErrUnsupportedMediaType = errors.New("ociread: unsupported media type")
	// ErrBlobMissing: the blob file is absent (or cannot be opened, or is
	// not a regular file).
	ErrBlobMissing = errors.New("ociread: blob missing")
	// ErrSizeMismatch: the blob's length differs from the descriptor size.
	ErrSizeMismatch = errors.New("ociread: blob size mismatch")
	// ErrDigestMismatch: the blob's content digest differs from the
	// descriptor digest.
	ErrDigestMismatch = errors.New("ociread: blob digest mismatch")
	// ErrInvalidDigest: a digest that is not a valid lowercase-hex sha256 or
	// sha512 digest. No path is ever built from such a digest.
	ErrInvalidDigest = errors.New("ociread: invalid digest")
	// ErrLimit: a Limits value (or the max given to ReadBlob) was exceeded.
	// It is limits.ErrLimit; the error is a *limits.Error naming the limit.
	ErrLimit = limits.ErrLimit
	// ErrCycle: nested image indexes refer to each other in a cycle.
	ErrCycle = errors.New("ociread: image index cycle")
	// ErrInvalidSource: a source string or Source that ParseSource or
	// OpenSource cannot use: an unknown transport, an empty path, a
	// malformed docker-archive ref.
	ErrInvalidSource = errors.New("ociread: invalid image source")
	// ErrInvalidPlatform: a platform string ParsePlatform cannot parse, or a
	// Select.Platform without os or architecture.
	ErrInvalidPlatform = errors.New("ociread: invalid platform")
)

// errNotImage marks a manifest that is well formed but is not a container
// image (an artifact: its config media type is not an image config). Platform
// selection skips such manifests; anywhere else it surfaces as
// ErrUnsupportedMediaType.
var errNotImage = errors.New("not a container image")
