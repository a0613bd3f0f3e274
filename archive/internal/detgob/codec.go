package detgob

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/gob"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// codec is the compiled encoder of one Go type (as declared, pointers
// included).
type codec struct {
	// enc writes v unconditionally, without a field delta: the encoding of a
	// slice, array or map element, a map key, or a top-level singleton.
	enc func(s *state, v reflect.Value)
	// field writes delta then v, unless gob omits v as a zero struct field;
	// it reports whether it wrote anything.
	field func(s *state, v reflect.Value, delta uint64) bool
	// sp is set for (non-GobEncoder) struct types.
	sp *structPlan
	// recursive is set when the type refers back to itself; its enc and
	// field then count nesting depth so cyclic values fail instead of
	// overflowing the stack.
	recursive bool
}

// maxDepth bounds the nesting of recursive types.
const maxDepth = 10_000

// fastKind lets structPlan.encode handle scalar fields inline.
type fastKind uint8

const (
	fastNone fastKind = iota
	fastBool
	fastInt
	fastUint
	fastString
)

type structField struct {
	index int      // reflect field index
	num   int      // gob field number
	fast  fastKind // scalar handled inline, or fastNone: use c
	c     *codec
}

// structPlan encodes a struct as field deltas and values, then a 0.
type structPlan struct {
	fields []structField
}

func (p *structPlan) encode(s *state, v reflect.Value) {
	last := -1
	b := s.b
	for i := range p.fields {
		f := &p.fields[i]
		fv := v.Field(f.index)
		delta := uint64(f.num - last)
		switch f.fast {
		case fastUint:
			if x := fv.Uint(); x != 0 {
				b = appendUint(b, delta)
				b = appendUint(b, x)
				last = f.num
			}
		case fastInt:
			if x := fv.Int(); x != 0 {
				b = appendUint(b, delta)
				b = appendInt(b, x)
				last = f.num
			}
		case fastString:
			if x := fv.String(); x != "" {
				b = appendUint(b, delta)
				b = appendString(b, x)
				last = f.num
			}
		case fastBool:
			if fv.Bool() {
				b = appendUint(b, delta)
				b = append(b, 1)
				last = f.num
			}
		default:
			s.b = b
			if f.c.field(s, fv, delta) {
				last = f.num
			}
			b = s.b
		}
	}
	s.b = append(b, 0)
}

// compiler builds codecs; e.mu must be held. New codecs go to building and
// are published to the Encoder only if the whole plan compiles.
type compiler struct {
	e          *Encoder
	building   map[reflect.Type]*codec
	inProgress map[reflect.Type]bool // codecFor calls not yet returned
}

func (c *compiler) codecFor(t reflect.Type, where string) (*codec, error) {
	if cd := c.e.codecs[t]; cd != nil {
		return cd, nil
	}
	if cd := c.building[t]; cd != nil {
		if c.inProgress[t] {
			cd.recursive = true // filled in by the outer call
		}
		return cd, nil
	}
	ut, err := c.e.userType(t)
	if err != nil {
		return nil, err
	}
	cd := &codec{}
	c.building[t] = cd
	c.inProgress[t] = true
	defer delete(c.inProgress, t)
	if ut.ext != 0 {
		extCodec(cd, ut)
		return cd, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		elem, err := c.codecFor(t.Elem(), where)
		if err != nil {
			return nil, err
		}
		cd.enc = func(s *state, v reflect.Value) {
			if v.IsNil() {
				s.fail(fmt.Errorf("detgob: nil element of type %s", v.Type()))
			}
			elem.enc(s, v.Elem())
		}
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			if v.IsNil() {
				return false
			}
			return elem.field(s, v.Elem(), delta)
		}
	case reflect.Bool:
		cd.enc = func(s *state, v reflect.Value) {
			if v.Bool() {
				s.b = append(s.b, 1)
			} else {
				s.b = append(s.b, 0)
			}
		}
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			if !v.Bool() {
				return false
			}
			s.b = append(appendUint(s.b, delta), 1)
			return true
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		cd.enc = func(s *state, v reflect.Value) { s.b = appendInt(s.b, v.Int()) }
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			x := v.Int()
			if x == 0 {
				return false
			}
			s.b = appendInt(appendUint(s.b, delta), x)
			return true
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		cd.enc = func(s *state, v reflect.Value) { s.b = appendUint(s.b, v.Uint()) }
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			x := v.Uint()
			if x == 0 {
				return false
			}
			s.b = appendUint(appendUint(s.b, delta), x)
			return true
		}
	case reflect.Float32, reflect.Float64:
		cd.enc = func(s *state, v reflect.Value) { s.b = appendUint(s.b, floatBits(v.Float())) }
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			f := v.Float()
			if f == 0 {
				return false
			}
			s.b = appendUint(appendUint(s.b, delta), floatBits(f))
			return true
		}
	case reflect.Complex64, reflect.Complex128:
		cd.enc = func(s *state, v reflect.Value) {
			x := v.Complex()
			s.b = appendUint(appendUint(s.b, floatBits(real(x))), floatBits(imag(x)))
		}
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			if v.Complex() == 0 {
				return false
			}
			s.b = appendUint(s.b, delta)
			cd.enc(s, v)
			return true
		}
	case reflect.String:
		cd.enc = func(s *state, v reflect.Value) { s.b = appendString(s.b, v.String()) }
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			x := v.String()
			if x == "" {
				return false
			}
			s.b = appendString(appendUint(s.b, delta), x)
			return true
		}
	case reflect.Slice:
		if err := c.sliceCodec(cd, t, where); err != nil {
			return nil, err
		}
	case reflect.Array:
		elem, err := c.codecFor(t.Elem(), where+"[]")
		if err != nil {
			return nil, err
		}
		cd.enc = func(s *state, v reflect.Value) {
			n := v.Len()
			s.b = appendUint(s.b, uint64(n))
			for i := 0; i < n; i++ {
				elem.enc(s, v.Index(i))
			}
		}
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			// encoding/gob always sends arrays, even zero ones.
			s.b = appendUint(s.b, delta)
			cd.enc(s, v)
			return true
		}
	case reflect.Map:
		if err := c.mapCodec(cd, t, where); err != nil {
			return nil, err
		}
	case reflect.Struct:
		sp, err := c.structPlan(t, where)
		if err != nil {
			return nil, err
		}
		cd.sp = sp
		cd.enc = sp.encode
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			// encoding/gob always sends structs, even zero ones.
			s.b = appendUint(s.b, delta)
			sp.encode(s, v)
			return true
		}
	default:
		// Interface, Chan, Func, UnsafePointer.
		return nil, fmt.Errorf("detgob: %s: unsupported type %s (kind %s)", where, t, t.Kind())
	}
	if cd.recursive {
		enc, field := cd.enc, cd.field
		cd.enc = func(s *state, v reflect.Value) {
			s.enter(t)
			enc(s, v)
			s.depth--
		}
		cd.field = func(s *state, v reflect.Value, delta uint64) bool {
			s.enter(t)
			ok := field(s, v, delta)
			s.depth--
			return ok
		}
	}
	return cd, nil
}

func (c *compiler) structPlan(t reflect.Type, where string) (*structPlan, error) {
	sp := &structPlan{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !isExported(f.Name) {
			continue
		}
		fwhere := where + "." + f.Name
		fc, err := c.codecFor(f.Type, fwhere)
		if err != nil {
			return nil, err
		}
		sf := structField{index: i, num: len(sp.fields), c: fc}
		if ut, _ := c.e.userType(f.Type); ut != nil && ut.ext == 0 {
			switch f.Type.Kind() {
			case reflect.Bool:
				sf.fast = fastBool
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				sf.fast = fastInt
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				sf.fast = fastUint
			case reflect.String:
				sf.fast = fastString
			}
		}
		sp.fields = append(sp.fields, sf)
	}
	if t.NumField() > 0 && len(sp.fields) == 0 {
		return nil, fmt.Errorf("detgob: %s: type %s has no exported fields", where, t)
	}
	return sp, nil
}

func (c *compiler) sliceCodec(cd *codec, t reflect.Type, where string) error {
	cd.field = func(s *state, v reflect.Value, delta uint64) bool {
		if v.Len() == 0 {
			return false
		}
		s.b = appendUint(s.b, delta)
		cd.enc(s, v)
		return true
	}
	et := t.Elem()
	if et.Kind() == reflect.Uint8 {
		// []byte, including slices of named byte types (even ones that are
		// GobEncoders, as encoding/gob does): gob's "bytes".
		cd.enc = func(s *state, v reflect.Value) { s.b = appendBytes(s.b, v.Bytes()) }
		return nil
	}
	elem, err := c.codecFor(et, where+"[]")
	if err != nil {
		return err
	}
	// Fast path for slices of pointers to plain structs ([]*ClipNode).
	if eut, _ := c.e.userType(et); eut != nil && eut.ext == 0 && et.Kind() == reflect.Pointer &&
		et.Elem().Kind() == reflect.Struct {
		sc := c.e.codecs[et.Elem()]
		if sc == nil {
			sc = c.building[et.Elem()]
		}
		// Not for recursive types: the fast path bypasses their depth count.
		if sc != nil && !sc.recursive && !elem.recursive {
			cd.enc = func(s *state, v reflect.Value) {
				n := v.Len()
				s.b = appendUint(s.b, uint64(n))
				start := len(s.b)
				for i := 0; i < n; i++ {
					if i == growSample && n > 2*growSample {
						s.reserve(start, i, n)
					}
					e := v.Index(i)
					if e.IsNil() {
						s.fail(fmt.Errorf("detgob: nil element of type %s", et))
					}
					sc.sp.encode(s, e.Elem())
				}
			}
			return nil
		}
	}
	cd.enc = func(s *state, v reflect.Value) {
		n := v.Len()
		s.b = appendUint(s.b, uint64(n))
		start := len(s.b)
		for i := 0; i < n; i++ {
			if i == growSample && n > 2*growSample {
				s.reserve(start, i, n)
			}
			elem.enc(s, v.Index(i))
		}
	}
	return nil
}

// growSample is how many elements of a long slice are encoded before the
// output is grown once for the rest (instead of append's repeated 1.25x
// growth and copying of a large buffer).
const growSample = 256

// reserve grows s.b for the remaining total-done elements of a sequence
// whose first done elements took len(s.b)-start bytes, plus 1/8 slack.
func (s *state) reserve(start, done, total int) {
	rest := (len(s.b) - start) / done * (total - done)
	s.b = slices.Grow(s.b, rest+rest/8)
}

// Map key orderings.
const (
	keyBytes    = iota // by encoded key bytes, then encoded value bytes
	keyString          // by string value
	keySigned          // by integer value
	keyUnsigned        // by unsigned value (bool: false < true)
)

type mapEntry struct {
	k, v reflect.Value
	s    string
	n    uint64
}

func (c *compiler) mapCodec(cd *codec, t reflect.Type, where string) error {
	kc, err := c.codecFor(t.Key(), where+"[key]")
	if err != nil {
		return err
	}
	vc, err := c.codecFor(t.Elem(), where+"[value]")
	if err != nil {
		return err
	}
	order := keyBytes
	if kut, err := c.e.userType(t.Key()); err != nil {
		return err
	} else if kut.ext == 0 {
		switch t.Key().Kind() {
		case reflect.String:
			order = keyString
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			order = keySigned
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr, reflect.Bool:
			order = keyUnsigned
		}
	}
	cd.enc = func(s *state, v reflect.Value) {
		n := v.Len()
		s.b = appendUint(s.b, uint64(n))
		if n == 0 {
			return
		}
		if order == keyBytes {
			encodeMapByBytes(s, v, kc, vc)
			return
		}
		ents := make([]mapEntry, 0, n)
		for it := v.MapRange(); it.Next(); {
			e := mapEntry{k: it.Key(), v: it.Value()}
			switch order {
			case keyString:
				e.s = e.k.String()
			case keySigned:
				e.n = uint64(e.k.Int()) ^ (1 << 63)
			default:
				if e.k.Kind() == reflect.Bool {
					if e.k.Bool() {
						e.n = 1
					}
				} else {
					e.n = e.k.Uint()
				}
			}
			ents = append(ents, e)
		}
		if order == keyString {
			slices.SortFunc(ents, func(a, b mapEntry) int { return strings.Compare(a.s, b.s) })
		} else {
			slices.SortFunc(ents, func(a, b mapEntry) int { return cmp.Compare(a.n, b.n) })
		}
		for i := range ents {
			kc.enc(s, ents[i].k)
			vc.enc(s, ents[i].v)
		}
	}
	cd.field = func(s *state, v reflect.Value, delta uint64) bool {
		// Nil maps are omitted; empty non-nil maps are sent.
		if v.IsNil() {
			return false
		}
		s.b = appendUint(s.b, delta)
		cd.enc(s, v)
		return true
	}
	return nil
}

// encodeMapByBytes writes the entries of v ordered by their encoded key
// bytes, ties (keys that encode alike, e.g. NaN or distinct pointers to equal
// values) broken by the encoded value bytes.
func encodeMapByBytes(s *state, v reflect.Value, kc, vc *codec) {
	type span struct{ k0, k1, v1 int }
	tmp := &state{}
	spans := make([]span, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k0 := len(tmp.b)
		kc.enc(tmp, it.Key())
		k1 := len(tmp.b)
		vc.enc(tmp, it.Value())
		spans = append(spans, span{k0, k1, len(tmp.b)})
	}
	b := tmp.b
	slices.SortFunc(spans, func(x, y span) int {
		if c := bytes.Compare(b[x.k0:x.k1], b[y.k0:y.k1]); c != 0 {
			return c
		}
		return bytes.Compare(b[x.k1:x.v1], b[y.k1:y.v1])
	})
	for _, sp := range spans {
		s.b = append(s.b, b[sp.k0:sp.v1]...)
	}
}

// extCodec encodes a type implementing gob.GobEncoder or
// encoding.BinaryMarshaler as its method's bytes (count-prefixed).
func extCodec(cd *codec, ut *userType) {
	indir := int(ut.encIndir)
	ext := ut.ext
	// receiver returns the value whose method is called, or false when a
	// nil pointer is met on the way.
	receiver := func(v reflect.Value) (reflect.Value, bool) {
		if indir == -1 {
			if !v.CanAddr() {
				p := reflect.New(v.Type())
				p.Elem().Set(v)
				return p, true
			}
			return v.Addr(), true
		}
		for i := 0; i < indir; i++ {
			if v.IsNil() {
				return v, false
			}
			v = v.Elem()
		}
		return v, true
	}
	call := func(s *state, r reflect.Value) {
		var data []byte
		var err error
		if ext == xGob {
			m, _ := reflect.TypeAssert[gob.GobEncoder](r)
			data, err = m.GobEncode()
		} else {
			m, _ := reflect.TypeAssert[encoding.BinaryMarshaler](r)
			data, err = m.MarshalBinary()
		}
		if err != nil {
			s.fail(err)
		}
		s.b = appendBytes(s.b, data)
	}
	cd.enc = func(s *state, v reflect.Value) {
		r, ok := receiver(v)
		if !ok || r.Kind() == reflect.Pointer && r.IsNil() {
			s.fail(fmt.Errorf("detgob: nil element of type %s", v.Type()))
		}
		call(s, r)
	}
	cd.field = func(s *state, v reflect.Value, delta uint64) bool {
		r, ok := receiver(v)
		if !ok || r.IsZero() {
			return false
		}
		s.b = appendUint(s.b, delta)
		call(s, r)
		return true
	}
}
