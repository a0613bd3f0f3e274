package archive

import (
	"crypto/sha256"
	"hash"
	"io"
)

// sumWriter writes to w and hashes what it writes: Encode records the
// sha256 of clip's sections (header, index, storage info) in the extension
// section, and Decode checks it, so that a change to any byte clip reads is
// ErrCorruptArchive for ociclip's readers (clip itself never looks).
type sumWriter struct {
	w io.Writer
	h hash.Hash
}

func newSumWriter(w io.Writer) *sumWriter { return &sumWriter{w: w, h: sha256.New()} }

func (s *sumWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.h.Write(p[:n])
	return n, err
}

// sum returns the sha256 of the bytes written so far.
func (s *sumWriter) sum() [sha256.Size]byte {
	var b [sha256.Size]byte
	s.h.Sum(b[:0])
	return b
}
