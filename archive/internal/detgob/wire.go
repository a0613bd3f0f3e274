package detgob

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"reflect"
)

// appendUint appends x in gob's unsigned encoding: values below 0x80 as one
// byte, otherwise the negated byte count followed by the big-endian bytes.
func appendUint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	return appendUintLong(b, x)
}

func appendUintLong(b []byte, x uint64) []byte {
	var buf [1 + 8]byte
	binary.BigEndian.PutUint64(buf[1:], x)
	bc := bits.LeadingZeros64(x) >> 3 // 8 - byte length of x
	buf[bc] = uint8(bc - 8)           // -byte length
	return append(b, buf[bc:]...)
}

// appendInt appends i in gob's signed encoding: the low bit of the unsigned
// value says whether to complement the rest.
func appendInt(b []byte, i int64) []byte {
	var x uint64
	if i < 0 {
		x = uint64(^i<<1) | 1
	} else {
		x = uint64(i << 1)
	}
	return appendUint(b, x)
}

// floatBits returns the byte-reversed IEEE bits gob sends for f.
func floatBits(f float64) uint64 {
	return bits.ReverseBytes64(math.Float64bits(f))
}

// appendString appends a count-prefixed string.
func appendString(b []byte, s string) []byte {
	return append(appendUint(b, uint64(len(s))), s...)
}

// appendBytes appends a count-prefixed byte slice.
func appendBytes(b []byte, p []byte) []byte {
	return append(appendUint(b, uint64(len(p))), p...)
}

// state is the output of one Marshal call.
type state struct {
	b     []byte
	depth int // nesting of recursive types
}

// enter counts one level of a recursive type.
func (s *state) enter(t reflect.Type) {
	s.depth++
	if s.depth > maxDepth {
		s.fail(fmt.Errorf("detgob: %s nested more than %d deep (cyclic value?)", t, maxDepth))
	}
}

// encodeError carries an error out of the encoding closures; Marshal turns
// it back into a returned error.
type encodeError struct{ err error }

func (s *state) fail(err error) {
	panic(encodeError{err})
}
