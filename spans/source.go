package spans

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Source is where the compressed bytes of layer blobs come from: a ranged
// read of a blob named by its digest. The local layout and an OCI registry
// (package blobs) implement it.
type Source interface {
	// OpenRange returns n bytes of the blob from offset off on (n < 0: to
	// the end of the blob). The reader may return fewer bytes only when
	// the blob is shorter; the engine checks what it gets.
	OpenRange(ctx context.Context, digest string, off, n int64) (io.ReadCloser, error)
	// Size returns the blob's size in bytes.
	Size(ctx context.Context, digest string) (int64, error)
}

// ReaderAtOpener opens a blob for random access by its digest (the root
// package's BlobOpener).
type ReaderAtOpener interface {
	OpenLayer(digest string) (io.ReaderAt, int64, error)
}

// ReaderAtSource adapts a ReaderAtOpener to a Source.
func ReaderAtSource(o ReaderAtOpener) Source { return &raSource{o: o} }

type raSource struct {
	o    ReaderAtOpener
	mu   sync.Mutex
	open map[string]raBlob
}

type raBlob struct {
	ra   io.ReaderAt
	size int64
}

// blob opens d once (an opener may read or map the whole blob) and keeps
// it; openers need not be safe for concurrent use.
func (s *raSource) blob(d string) (io.ReaderAt, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.open[d]; ok {
		return b.ra, b.size, nil
	}
	ra, size, err := s.o.OpenLayer(d)
	if err != nil {
		return nil, 0, err
	}
	if s.open == nil {
		s.open = map[string]raBlob{}
	}
	s.open[d] = raBlob{ra, size}
	return ra, size, nil
}

func (s *raSource) OpenRange(ctx context.Context, d string, off, n int64) (io.ReadCloser, error) {
	ra, size, err := s.blob(d)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > size {
		return nil, fmt.Errorf("%w: range at %d of a %d-byte blob", ErrVerify, off, size)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	return io.NopCloser(io.NewSectionReader(ra, off, n)), nil
}

func (s *raSource) Size(ctx context.Context, d string) (int64, error) {
	_, size, err := s.blob(d)
	return size, err
}

// extendStep is how much more of a blob the engine fetches when a decoder
// reads past the compressed range it planned for.
const extendStep = 64 << 10

// fetched is an io.ReaderAt over the part of one blob the engine fetched,
// [base, base+len(buf)), that fetches further on when a decoder reads on
// from its end (a deflate block can end a few bytes after the next resume
// point's byte). It is used by one goroutine.
type fetched struct {
	ctx    context.Context
	src    Source
	digest string
	size   int64 // blob size
	base   int64
	buf    []byte
	n      *atomic.Int64 // compressed bytes fetched, for Stats
}

// fetchRange reads [off, off+n) of the blob.
func fetchRange(ctx context.Context, src Source, d string, off, n int64) ([]byte, error) {
	rc, err := src.OpenRange(ctx, d, off, n)
	if err != nil {
		if errors.Is(err, ErrVerify) {
			return nil, err // a range the index names is outside the blob
		}
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(rc, b)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: blob %s: %d bytes at %d, wanted %d (changed blob?)", ErrVerify, d, k, off, n)
		}
		if errors.Is(err, ErrVerify) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	return b, nil
}

func (f *fetched) ReadAt(p []byte, off int64) (int, error) {
	end := f.base + int64(len(f.buf))
	if off < f.base {
		return 0, fmt.Errorf("%w: read at %d before the fetched range at %d", ErrVerify, off, f.base)
	}
	if off >= end {
		if end >= f.size {
			return 0, io.EOF
		}
		want := min(max(int64(len(p)), extendStep), f.size-end)
		// Fetch from the end of what we have so the buffer stays one range.
		more, err := fetchRange(f.ctx, f.src, f.digest, end, off-end+want)
		if err != nil {
			return 0, err
		}
		f.n.Add(int64(len(more)))
		f.buf = append(f.buf, more...)
		end = f.base + int64(len(f.buf))
	}
	k := copy(p, f.buf[off-f.base:])
	if k < len(p) && end >= f.size {
		return k, io.EOF
	}
	return k, nil
}
