package layerz

import (
	"bytes"
	"io"

	"github.com/klauspost/compress/flate"
)

// windowLevel is the DEFLATE level of compressed windows: the fastest, since
// the indexer compresses one window per resume point while it inflates the
// layer (level 6 saves 10% more, at half the speed).
const windowLevel = flate.BestSpeed

// WindowCompressor compresses resume point windows (ResumePoint.ZWindow),
// reusing one DEFLATE encoder. The zero value is ready to use; it is not
// safe for concurrent use.
type WindowCompressor struct {
	fw  *flate.Writer
	buf bytes.Buffer
}

// Compress returns w compressed, in a new slice of its own (nil for an
// empty window).
func (c *WindowCompressor) Compress(w []byte) []byte {
	if len(w) == 0 {
		return nil
	}
	c.buf.Reset()
	if c.fw == nil {
		// Only an invalid level fails.
		c.fw, _ = flate.NewWriter(&c.buf, windowLevel)
	} else {
		c.fw.Reset(&c.buf)
	}
	// Writes to a bytes.Buffer do not fail.
	c.fw.Write(w)
	c.fw.Close()
	return bytes.Clone(c.buf.Bytes())
}

// Window returns rp's window inflated (nil when it has none). A window that
// does not inflate, or inflates to more than MaxWindow bytes, wraps
// ErrCorrupt.
func (rp ResumePoint) Window() ([]byte, error) {
	if len(rp.ZWindow) == 0 {
		return nil, nil
	}
	fr := flate.NewReader(bytes.NewReader(rp.ZWindow))
	defer fr.Close()
	// Read to io.EOF, which flate returns only after a final block (a
	// truncated stream is io.ErrUnexpectedEOF), into one buffer a byte
	// longer than a window can be.
	w := make([]byte, MaxWindow+1)
	n := 0
	for {
		k, err := fr.Read(w[n:])
		n += k
		switch {
		case n > MaxWindow:
			return nil, corruptf("gzip: resume point window of more than %d bytes", MaxWindow)
		case err == io.EOF:
			return w[:n:n], nil
		case err != nil:
			return nil, corruptf("gzip: resume point window: %v", err)
		}
	}
}
