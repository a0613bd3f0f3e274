package layerz

import "io"

// BlobBufSize is the size of the buffered reader decoders read a blob through.
const BlobBufSize = 64 << 10

// CountingReader counts the bytes read through it: N is the number of bytes
// R has returned so far.
type CountingReader struct {
	R io.Reader
	N int64
}

// Read implements io.Reader.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
