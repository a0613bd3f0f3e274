package layerz

import "hash/crc32"

// ChunkSize is the span of uncompressed bytes covered by one chunk checksum
// (tarindex records one CRC-32C per ChunkSize bytes of every layer).
const ChunkSize = 64 << 10

// castagnoli is the CRC-32C table (hardware accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC-32C (Castagnoli) of b, the checksum of a chunk.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ChunkCRCs computes the CRC-32C of every ChunkSize bytes of a stream
// written to it in pieces of any size.
type ChunkCRCs struct {
	fill int64
	cur  uint32
	out  []uint32
}

// Write adds p to the stream.
func (c *ChunkCRCs) Write(p []byte) {
	for len(p) > 0 {
		n := min(int64(len(p)), ChunkSize-c.fill)
		c.cur = crc32.Update(c.cur, castagnoli, p[:n])
		c.fill += n
		p = p[n:]
		if c.fill == ChunkSize {
			c.out = append(c.out, c.cur)
			c.cur, c.fill = 0, 0
		}
	}
}

// Finish returns the checksums, the last chunk's included when partial.
func (c *ChunkCRCs) Finish() []uint32 {
	if c.fill > 0 {
		c.out = append(c.out, c.cur)
		c.cur, c.fill = 0, 0
	}
	return c.out
}
