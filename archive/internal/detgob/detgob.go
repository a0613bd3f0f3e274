// Package detgob writes encoding/gob streams deterministically.
//
// clip v2 metadata files are decoded with encoding/gob, so ociclip has to
// write gob. encoding/gob's own encoder cannot produce reproducible bytes:
//
//   - map entries are written in Go's randomised map iteration order;
//   - type ids are process-global: encoding/gob numbers types in the order
//     the process first meets them (in any Encoder or Decoder), so the same
//     value encodes to different bytes depending on what the process did
//     before.
//
// detgob produces the stream that a brand-new process would produce with
// gob.NewEncoder(w).Encode(v), except that map entries are sorted:
// type-definition messages (ids assigned from gob's first user id, 64, by a
// port of encoding/gob's own id-assignment and send order) followed by one
// value message. For a value without multi-entry maps the bytes are identical
// to a fresh process's encoding/gob output; the tests check this against
// encoding/gob running in a child process.
//
// Supported: bool, all int, uint and float sizes, complex, string, []byte,
// slices, arrays, maps, structs (exported fields; embedded structs are a
// field named after the type), pointers, and types implementing
// gob.GobEncoder or encoding.BinaryMarshaler (time.Time is a GobEncoder).
// Interfaces, channels, functions and unsafe pointers are rejected with an
// error (encoding/gob silently drops chan and func struct fields; detgob
// refuses them rather than drop data).
//
// Map entries are written in ascending key order for string, integer and
// bool keys; for other key types, in ascending order of the encoded key
// bytes (then of the encoded value bytes), which is still deterministic.
//
// Zero-value rules are encoding/gob's (Go 1.26): inside a struct, zero
// numbers, false, empty strings, empty slices, nil maps, nil pointers and
// zero GobEncoder values (reflect.Value.IsZero) are omitted; structs and
// arrays are always written, even when zero; non-nil empty maps are written.
// Nil pointers inside slices, arrays and maps are an error, as in
// encoding/gob. Values of recursive types nested more than 10000 levels deep
// (in practice: cyclic values) are an error rather than a stack overflow.
package detgob

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
)

// maxLength is the room reserved for a message's length prefix.
const maxLength = 9

// tooBig is encoding/gob's limit on a message length (64-bit platforms).
const tooBig = (1 << 30) << (^uint(0) >> 62)

// Encoder caches compiled type plans so repeated Marshal calls on the same
// types do no reflection-driven planning. The cache is per Encoder: there is
// no package-level state. An Encoder is safe for concurrent use.
type Encoder struct {
	mu     sync.Mutex
	users  map[reflect.Type]*userType
	codecs map[reflect.Type]*codec
	tops   map[reflect.Type]*topPlan
}

// topPlan is everything needed to encode a top-level value of one type.
type topPlan struct {
	prefix []byte // the type-definition messages
	id     int64  // the type id of the value message
	ut     *userType
	sp     *structPlan // top-level struct: fields without a singleton delta
	c      *codec      // otherwise: the singleton value's codec
	hint   atomic.Int64
}

// NewEncoder returns an Encoder with an empty plan cache.
func NewEncoder() *Encoder {
	return &Encoder{
		users:  make(map[reflect.Type]*userType),
		codecs: make(map[reflect.Type]*codec),
		tops:   make(map[reflect.Type]*topPlan),
	}
}

// Marshal returns the gob stream of v: type definitions then the value,
// deterministic. It uses a fresh Encoder; use an Encoder to reuse plans.
func Marshal(v any) ([]byte, error) {
	return NewEncoder().Marshal(v)
}

// MarshalSize is Marshal with a guess of the output size: the buffer starts
// with that capacity. For values dominated by large byte slices, whose size
// the caller knows, it saves growing (and copying) a large buffer many times.
func MarshalSize(v any, sizeHint int) ([]byte, error) {
	return NewEncoder().marshal(v, sizeHint)
}

// MarshalSize is Marshal with a guess of the output size (see MarshalSize).
func (e *Encoder) MarshalSize(v any, sizeHint int) ([]byte, error) {
	return e.marshal(v, sizeHint)
}

// Marshal returns the gob stream of v: the type-definition messages followed
// by one value message, exactly as gob.NewEncoder(w).Encode(v) frames it in a
// fresh process, with map entries sorted. The result decodes with
// gob.NewDecoder(r).Decode. Every call produces a complete stream; calls do
// not depend on each other.
func (e *Encoder) Marshal(v any) ([]byte, error) {
	return e.marshal(v, 0)
}

func (e *Encoder) marshal(v any, sizeHint int) ([]byte, error) {
	if v == nil {
		return nil, errors.New("detgob: cannot encode nil value")
	}
	rv := reflect.ValueOf(v)
	p, err := e.plan(rv.Type())
	if err != nil {
		return nil, err
	}
	if p.ut.ext == 0 {
		for i := 0; i < p.ut.indir; i++ {
			if rv.IsNil() {
				return nil, fmt.Errorf("detgob: cannot encode nil pointer of type %s", rv.Type())
			}
			rv = rv.Elem()
		}
	}
	size := max(int(p.hint.Load()), sizeHint)
	if size < len(p.prefix)+maxLength+64 {
		size = len(p.prefix) + maxLength + 64
	}
	s := &state{b: make([]byte, len(p.prefix)+maxLength, size)}
	copy(s.b, p.prefix)
	if err := p.encode(s, rv); err != nil {
		return nil, err
	}
	out := s.b
	msgLen := len(out) - len(p.prefix) - maxLength
	if uint64(msgLen) >= tooBig {
		return nil, errors.New("detgob: message too big")
	}
	var lb [maxLength]byte
	n := len(appendUint(lb[:0], uint64(msgLen)))
	shift := maxLength - n
	copy(out[len(p.prefix)+shift:], lb[:n])
	copy(out[shift:], out[:len(p.prefix)])
	p.hint.Store(int64(len(out) + len(out)/8))
	out = out[shift:]
	if cap(out)-len(out) > 1<<20 && len(out) < cap(out)/2 {
		// The hint came from a much bigger value: don't hand back (and keep
		// alive) the excess.
		out = append([]byte(nil), out...)
	}
	return out, nil
}

// encode writes the value message body (type id and value) after the
// reserved length space, turning encoding panics raised by state.fail into
// errors.
func (p *topPlan) encode(s *state, rv reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			ee, ok := r.(encodeError)
			if !ok {
				panic(r)
			}
			err = ee.err
		}
	}()
	s.b = appendInt(s.b, p.id)
	if p.sp != nil {
		p.sp.encode(s, rv)
	} else {
		s.b = append(s.b, 0) // singleton field delta
		p.c.enc(s, rv)
	}
	return nil
}

// plan returns the cached top-level plan for t, compiling it on first use.
func (e *Encoder) plan(t reflect.Type) (*topPlan, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.tops[t]; p != nil {
		return p, nil
	}
	ut, err := e.userType(t)
	if err != nil {
		return nil, err
	}
	c := &compiler{e: e, building: make(map[reflect.Type]*codec), inProgress: make(map[reflect.Type]bool)}
	p := &topPlan{ut: ut}
	switch {
	case ut.ext != 0:
		p.c, err = c.codecFor(ut.user, ut.user.String())
	case ut.base.Kind() == reflect.Struct:
		var cd *codec
		cd, err = c.codecFor(ut.base, ut.base.String())
		if err == nil {
			p.sp = cd.sp
		}
	default:
		p.c, err = c.codecFor(ut.base, ut.base.String())
	}
	if err != nil {
		return nil, err
	}
	b := newTypeBuilder(e)
	p.prefix, p.id, err = b.top(t)
	if err != nil {
		return nil, err
	}
	for rt, cd := range c.building {
		e.codecs[rt] = cd
	}
	e.tops[t] = p
	return p, nil
}
