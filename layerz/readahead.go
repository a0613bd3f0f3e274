package layerz

import (
	"io"
	"sync"
)

const (
	// raDepth is the number of blob buffers the read-ahead goroutine
	// fills before the decompressor asks for them.
	raDepth = 4
	// raMinBuf and raMaxBuf bound the read-ahead buffers: they start
	// small, so that tiny layers cost little, and double up to raMaxBuf
	// while reads fill them.
	raMinBuf = 16 << 10
	raMaxBuf = 256 << 10
)

// ReadAhead reads the blob on its own goroutine, so that whatever its reader
// does per byte (ociread's verifier hashes the compressed stream with sha256)
// and the read system calls overlap with decompression instead of adding to
// it. Read returns the bytes and errors of the source in order.
type ReadAhead struct {
	full chan raBuf
	free chan []byte
	done chan struct{}
	wg   sync.WaitGroup
	// consumer side
	buf []byte // the buffer being consumed, returned to free when drained
	cur []byte // its unread part
	err error  // the source's error, returned once cur is drained
}

type raBuf struct {
	b   []byte
	err error
}

// NewReadAhead starts reading r. Stop must be called when done.
func NewReadAhead(r io.Reader) *ReadAhead {
	ra := &ReadAhead{
		full: make(chan raBuf, raDepth),
		free: make(chan []byte, raDepth),
		done: make(chan struct{}),
	}
	for range raDepth {
		ra.free <- nil // allocated on first use
	}
	ra.wg.Add(1)
	go ra.loop(r)
	return ra
}

func (ra *ReadAhead) loop(r io.Reader) {
	defer ra.wg.Done()
	size := raMinBuf
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.done:
			return
		}
		if cap(b) < size {
			b = make([]byte, size)
		}
		b = b[:cap(b)]
		n, err := 0, error(nil)
		for try := 0; n == 0 && err == nil; try++ {
			if try == 100 {
				err = io.ErrNoProgress // as bufio.Reader
				break
			}
			n, err = r.Read(b)
		}
		if n < 0 || n > len(b) {
			n, err = 0, io.ErrShortBuffer // a broken reader; never index past b
		}
		if n == len(b) && size < raMaxBuf {
			size *= 2
		}
		ra.full <- raBuf{b: b[:n], err: err} // never blocks: full has room for every buffer
		if err != nil {
			return
		}
	}
}

// Read implements io.Reader.
func (ra *ReadAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf // never blocks: free has room for every buffer
			ra.buf = nil
		}
		rb := <-ra.full
		ra.buf, ra.cur, ra.err = rb.b, rb.b, rb.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Stop ends the read-ahead and returns after the goroutine stopped reading
// the source.
func (ra *ReadAhead) Stop() {
	close(ra.done)
	ra.wg.Wait()
}
