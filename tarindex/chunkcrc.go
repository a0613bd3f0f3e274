package tarindex

import "hash/crc32"

// ChunkSize is the span of uncompressed bytes covered by one entry of
// Result.ChunkCRCs.
const ChunkSize = 64 << 10

// castagnoli is the CRC-32C table (hardware accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkCRCs computes the CRC-32C of every ChunkSize bytes of a stream.
type chunkCRCs struct {
	fill int64
	cur  uint32
	out  []uint32
}

func (c *chunkCRCs) write(p []byte) {
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

// finish returns the checksums, the last chunk's included when partial.
func (c *chunkCRCs) finish() []uint32 {
	if c.fill > 0 {
		c.out = append(c.out, c.cur)
		c.cur, c.fill = 0, 0
	}
	return c.out
}
