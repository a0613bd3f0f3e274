package ociread

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// checkDigest reports whether d is "sha256:" followed by 64 lowercase hex
// digits or "sha512:" followed by 128. It is the only gate between a digest
// read from JSON and a file path, so it is deliberately strict.
func checkDigest(d digest.Digest) error {
	s := string(d)
	alg, enc, ok := strings.Cut(s, ":")
	want := 0
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	}
	if !ok || want == 0 {
		return fmt.Errorf("%w: %q: want sha256:<64 hex> or sha512:<128 hex>", ErrInvalidDigest, short(s))
	}
	if len(enc) != want {
		return fmt.Errorf("%w: %q: %s needs %d lowercase hex digits, got %d characters", ErrInvalidDigest, short(s), alg, want, len(enc))
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: %q: character %q at offset %d is not lowercase hex", ErrInvalidDigest, short(s), c, len(alg)+1+i)
		}
	}
	return nil
}

// newHash returns the hash for a digest already accepted by checkDigest.
func newHash(d digest.Digest) hash.Hash {
	if strings.HasPrefix(string(d), "sha512:") {
		return sha512.New()
	}
	return sha256.New()
}

// short shortens a string taken from untrusted input for use in a message.
func short(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
