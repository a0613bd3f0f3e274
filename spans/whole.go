package spans

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/ociclip/ociclip/layerz"
)

// wholeLayer is a layer without usable resume points, inflated once into a
// file (under the cache directory, or the system's temporary directory)
// and read from there.
type wholeLayer struct {
	f     *os.File
	usize int64
}

// loadWhole streams the layer once, inflating it into a temporary file and
// verifying its checksum chunks on the way.
func (l *layer) loadWhole(ctx context.Context, src Source, dir string, inflated, fetchedN *atomic.Int64) (*wholeLayer, error) {
	rc, err := src.OpenRange(ctx, l.digest, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	defer rc.Close()
	cr := &countReader{r: rc, n: fetchedN}
	dec, err := layerz.NewReader(cr, l.comp)
	if err != nil {
		return nil, fmt.Errorf("%w: layer %s: %v", ErrVerify, l.digest, err)
	}
	defer dec.Close()
	f, err := os.CreateTemp(dir, "ociclip-layer-*")
	if err != nil {
		return nil, err
	}
	// The file is only reached through f: remove its name at once.
	os.Remove(f.Name())
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	buf := make([]byte, l.chunk)
	var pos int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, rerr := io.ReadFull(&countReader{r: dec, n: inflated}, buf)
		if n > 0 {
			if len(l.crcs) > 0 {
				if err := l.verify(buf[:n], pos); err != nil {
					return nil, err
				}
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return nil, err
			}
			pos += int64(n)
		}
		if rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			if errorsIsFetch(rerr) {
				return nil, rerr
			}
			return nil, fmt.Errorf("%w: layer %s at %d: %v", ErrVerify, l.digest, pos, rerr)
		}
	}
	if l.usize >= 0 && pos != l.usize {
		return nil, fmt.Errorf("%w: layer %s inflates to %d bytes, indexed as %d", ErrVerify, l.digest, pos, l.usize)
	}
	ok = true
	return &wholeLayer{f: f, usize: pos}, nil
}

// readAt fills p from offset off of the inflated layer.
func (w *wholeLayer) readAt(p []byte, off int64) error {
	if off < 0 || off > w.usize || int64(len(p)) > w.usize-off {
		return fmt.Errorf("%w: bytes %d+%d outside the %d-byte uncompressed stream", ErrVerify, off, len(p), w.usize)
	}
	_, err := w.f.ReadAt(p, off)
	return err
}

func errorsIsFetch(err error) bool { return errors.Is(err, ErrFetch) }
