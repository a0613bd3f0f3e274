package ociclip

import (
	"fmt"
	"strings"

	"github.com/ociclip/ociclip/archive"
)

// Values of Options.Reference: what the archive records as clip's
// Reference, the identifier a mount pulls the image by.
const (
	// ReferenceTag records the tag of StorageImageRef ("24.04"; "latest"
	// when it names none). Every clip version mounts it, clip a2a14fb
	// only this; but a tag moves: pushed again, it names other layers
	// than the archive lists.
	ReferenceTag = "tag"
	// ReferenceDigest records the digest of the manifest indexed
	// ("sha256:..."), which newer clip runtimes mount as repo@sha256:...
	// and which never moves. The image must be in the registry under
	// that digest (pushed without conversion); clip a2a14fb cannot mount
	// it.
	ReferenceDigest = "digest"
)

// checkReference validates Options.Reference ("" is ReferenceTag).
func checkReference(mode string) error {
	switch mode {
	case "", ReferenceTag, ReferenceDigest:
		return nil
	}
	return fmt.Errorf("%w: Reference %q: want %q or %q", ErrOptions, mode, ReferenceTag, ReferenceDigest)
}

// withReference returns sref with the Reference the mode asks for, given
// the storage reference as written and the digest of the manifest indexed.
// In digest mode a digest in storageRef must be that manifest's.
func withReference(mode, storageRef string, sref archive.StorageRef, manifestDigest string) (archive.StorageRef, error) {
	if mode != ReferenceDigest || storageRef == "" {
		return sref, nil
	}
	if _, d, ok := strings.Cut(storageRef, "@"); ok && d != manifestDigest {
		return sref, fmt.Errorf("%w: StorageImageRef %q names digest %s, the manifest indexed is %s", ErrOptions, storageRef, d, manifestDigest)
	}
	sref.Reference = manifestDigest
	return sref, nil
}
