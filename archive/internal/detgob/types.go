package detgob

// This file ports encoding/gob's type bookkeeping (type.go and the type
// sending half of encoder.go, Go 1.26) with the process-global tables
// replaced by per-stream ones. Ids, type names and the order of the
// type-definition messages follow encoding/gob exactly, so a stream matches
// what a fresh process would write.

import (
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"unicode"
	"unicode/utf8"
)

// External encoding kinds, as in encoding/gob.
const (
	xGob    = 1 + iota // gob.GobEncoder
	xBinary            // encoding.BinaryMarshaler
)

var (
	gobEncoderIface      = reflect.TypeFor[gob.GobEncoder]()
	binaryMarshalerIface = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// userType mirrors encoding/gob's userTypeInfo (encoding half).
type userType struct {
	user     reflect.Type // the type as given
	base     reflect.Type // after all pointer indirections
	indir    int          // pointer indirections from user to base
	ext      int          // 0, xGob or xBinary
	encIndir int8         // indirections from user to the method receiver; -1: take the address
}

// userType returns the cached userType of rt. e.mu must be held.
func (e *Encoder) userType(rt reflect.Type) (*userType, error) {
	if ut := e.users[rt]; ut != nil {
		return ut, nil
	}
	ut := &userType{user: rt, base: rt}
	// Cycle detection for types like "type T *T" (Knuth's tortoise and hare,
	// as encoding/gob does it).
	slow := ut.base
	for ut.base.Kind() == reflect.Pointer {
		ut.base = ut.base.Elem()
		if ut.base == slow {
			return nil, fmt.Errorf("detgob: can't represent recursive pointer type %s", ut.base)
		}
		if ut.indir%2 == 0 {
			slow = slow.Elem()
		}
		ut.indir++
	}
	if ok, indir := implementsInterface(rt, gobEncoderIface); ok {
		ut.ext, ut.encIndir = xGob, indir
	} else if ok, indir := implementsInterface(rt, binaryMarshalerIface); ok {
		ut.ext, ut.encIndir = xBinary, indir
	}
	e.users[rt] = ut
	return ut, nil
}

// implementsInterface reports whether typ, or a type reached from it by
// dereferencing or by taking its address, implements iface, and the number
// of indirections to get there (-1: address).
func implementsInterface(typ, iface reflect.Type) (bool, int8) {
	var indir int8
	for rt := typ; ; {
		if rt.Implements(iface) {
			return true, indir
		}
		if rt.Kind() != reflect.Pointer {
			break
		}
		indir++
		if indir > 100 {
			return false, 0
		}
		rt = rt.Elem()
	}
	if typ.Kind() != reflect.Pointer && reflect.PointerTo(typ).Implements(iface) {
		return true, -1
	}
	return false, 0
}

// isExported reports whether name starts with an upper-case letter.
func isExported(name string) bool {
	r, _ := utf8.DecodeRuneInString(name)
	return unicode.IsUpper(r)
}

// isSent reports whether encoding/gob transmits the struct field: exported,
// and not a chan or func (or pointer to one).
func isSent(f *reflect.StructField) bool {
	if !isExported(f.Name) {
		return false
	}
	t := f.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() != reflect.Chan && t.Kind() != reflect.Func
}

// Builtin type ids (encoding/gob type.go bootstrap order).
const (
	idBool      = 1
	idInt       = 2
	idUint      = 3
	idFloat     = 4
	idBytes     = 5
	idString    = 6
	idComplex   = 7
	idInterface = 8
	firstUserID = 64
)

type wkind uint8

const (
	wBuiltin wkind = iota
	wArray
	wSlice
	wStruct
	wMap
	wGobEnc
)

// wtype is a gob type description (encoding/gob's gobType).
type wtype struct {
	id     int64
	name   string
	kind   wkind
	elem   int64 // array, slice, map
	key    int64 // map
	length int   // array
	fields []wfield
}

type wfield struct {
	name string
	id   int64
}

// Field numbers of the wireType struct.
const (
	wireNone   = -1
	wireArray  = 0
	wireSlice  = 1
	wireStruct = 2
	wireMap    = 3
	wireGob    = 4
	wireBinary = 5
)

// winfo is encoding/gob's typeInfo: the id of a type and its wireType.
type winfo struct {
	id   int64
	wire int // wireType field, or wireNone for builtin types
	t    *wtype
}

// typeBuilder holds the id tables of one stream.
type typeBuilder struct {
	e     *Encoder
	next  int64
	types map[reflect.Type]*wtype
	infos map[reflect.Type]*winfo
	sent  map[reflect.Type]int64
	out   []byte
	msg   []byte
}

func newTypeBuilder(e *Encoder) *typeBuilder {
	return &typeBuilder{
		e:     e,
		next:  firstUserID,
		types: make(map[reflect.Type]*wtype),
		infos: make(map[reflect.Type]*winfo),
		sent:  make(map[reflect.Type]int64),
	}
}

func (b *typeBuilder) setID(t *wtype) {
	if t.id != 0 {
		return
	}
	t.id = b.next
	b.next++
}

func builtin(id int64) *wtype { return &wtype{id: id, kind: wBuiltin} }

// newTypeObject ports encoding/gob's newTypeObject.
func (b *typeBuilder) newTypeObject(name string, ut *userType, rt reflect.Type) (*wtype, error) {
	if ut.ext != 0 {
		t := &wtype{name: name, kind: wGobEnc}
		b.setID(t)
		return t, nil
	}
	switch rt.Kind() {
	case reflect.Bool:
		return builtin(idBool), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return builtin(idInt), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return builtin(idUint), nil
	case reflect.Float32, reflect.Float64:
		return builtin(idFloat), nil
	case reflect.Complex64, reflect.Complex128:
		return builtin(idComplex), nil
	case reflect.String:
		return builtin(idString), nil
	case reflect.Interface:
		return builtin(idInterface), nil
	case reflect.Array:
		at := &wtype{name: name, kind: wArray}
		b.types[rt] = at
		elem, err := b.getBaseType("", rt.Elem())
		if err != nil {
			return nil, err
		}
		// Arrays, maps and slices take their id after their elements.
		b.setID(at)
		at.elem = elem.id
		at.length = rt.Len()
		return at, nil
	case reflect.Map:
		mt := &wtype{name: name, kind: wMap}
		b.types[rt] = mt
		key, err := b.getBaseType("", rt.Key())
		if err != nil {
			return nil, err
		}
		elem, err := b.getBaseType("", rt.Elem())
		if err != nil {
			return nil, err
		}
		b.setID(mt)
		mt.key = key.id
		mt.elem = elem.id
		return mt, nil
	case reflect.Slice:
		if rt.Elem().Kind() == reflect.Uint8 {
			return builtin(idBytes), nil
		}
		st := &wtype{name: name, kind: wSlice}
		b.types[rt] = st
		elem, err := b.getBaseType(rt.Elem().Name(), rt.Elem())
		if err != nil {
			return nil, err
		}
		b.setID(st)
		b.setID(elem)
		st.elem = elem.id
		return st, nil
	case reflect.Struct:
		// Structs take their id before their fields.
		st := &wtype{name: name, kind: wStruct}
		b.setID(st)
		b.types[rt] = st
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if !isSent(&f) {
				continue
			}
			fut, err := b.e.userType(f.Type)
			if err != nil {
				return nil, err
			}
			tname := fut.base.Name()
			if tname == "" {
				tname = fut.base.String()
			}
			gt, err := b.getBaseType(tname, f.Type)
			if err != nil {
				return nil, err
			}
			b.setID(gt)
			st.fields = append(st.fields, wfield{f.Name, gt.id})
		}
		return st, nil
	default:
		return nil, fmt.Errorf("detgob: can't handle type %s", rt)
	}
}

// getBaseType returns the description of rt's base type.
func (b *typeBuilder) getBaseType(name string, rt reflect.Type) (*wtype, error) {
	ut, err := b.e.userType(rt)
	if err != nil {
		return nil, err
	}
	return b.getType(name, ut, ut.base)
}

// getType returns the description of rt, creating it on first use.
func (b *typeBuilder) getType(name string, ut *userType, rt reflect.Type) (*wtype, error) {
	if t := b.types[rt]; t != nil {
		return t, nil
	}
	t, err := b.newTypeObject(name, ut, rt)
	if err != nil {
		return nil, err
	}
	b.types[rt] = t
	return t, nil
}

// getTypeInfo ports encoding/gob's getTypeInfo/buildTypeInfo.
func (b *typeBuilder) getTypeInfo(ut *userType) (*winfo, error) {
	rt := ut.base
	if ut.ext != 0 {
		rt = ut.user
	}
	if info := b.infos[rt]; info != nil {
		return info, nil
	}
	gt, err := b.getBaseType(rt.Name(), rt)
	if err != nil {
		return nil, err
	}
	info := &winfo{id: gt.id, wire: wireNone}
	if ut.ext != 0 {
		ugt, err := b.getType(rt.Name(), ut, rt)
		if err != nil {
			return nil, err
		}
		if ugt.kind != wGobEnc {
			return nil, fmt.Errorf("detgob: internal error: %s is not a GobEncoder type", rt)
		}
		info.t = ugt
		if ut.ext == xGob {
			info.wire = wireGob
		} else {
			info.wire = wireBinary
		}
	} else {
		info.t = gt
		switch rt.Kind() {
		case reflect.Array:
			info.wire = wireArray
		case reflect.Map:
			info.wire = wireMap
		case reflect.Slice:
			if rt.Elem().Kind() != reflect.Uint8 {
				info.wire = wireSlice
			}
		case reflect.Struct:
			info.wire = wireStruct
		}
	}
	b.infos[rt] = info
	return info, nil
}

// sendType ports Encoder.sendType: it emits the definition of origt (and of
// the types it refers to) unless origt is builtin or already sent.
func (b *typeBuilder) sendType(origt reflect.Type) (bool, error) {
	ut, err := b.e.userType(origt)
	if err != nil {
		return false, err
	}
	if ut.ext != 0 {
		return b.sendActualType(ut, ut.base)
	}
	switch rt := ut.base; rt.Kind() {
	case reflect.Slice:
		if rt.Elem().Kind() == reflect.Uint8 {
			return false, nil
		}
	case reflect.Array, reflect.Map, reflect.Struct:
	default:
		// Basic types, interfaces, chans and funcs are not described.
		return false, nil
	}
	return b.sendActualType(ut, ut.base)
}

// sendActualType ports Encoder.sendActualType: the definition of actual,
// then, depth first, those of its fields, elements, keys.
func (b *typeBuilder) sendActualType(ut *userType, actual reflect.Type) (bool, error) {
	if _, ok := b.sent[actual]; ok {
		return false, nil
	}
	info, err := b.getTypeInfo(ut)
	if err != nil {
		return false, err
	}
	if err := b.writeTypeMessage(info); err != nil {
		return false, err
	}
	b.sent[ut.base] = info.id
	if ut.user != ut.base {
		b.sent[ut.user] = info.id
	}
	var inner []reflect.Type
	switch st := actual; st.Kind() {
	case reflect.Struct:
		for i := 0; i < st.NumField(); i++ {
			if isExported(st.Field(i).Name) {
				inner = append(inner, st.Field(i).Type)
			}
		}
	case reflect.Array, reflect.Slice:
		inner = append(inner, st.Elem())
	case reflect.Map:
		inner = append(inner, st.Key(), st.Elem())
	}
	for _, t := range inner {
		if _, err := b.sendType(t); err != nil {
			return false, err
		}
	}
	return true, nil
}

// top returns the type-definition messages for a top-level value of type t
// and the id its value message carries (Encoder.sendTypeDescriptor and
// sendTypeId on a fresh Encoder).
func (b *typeBuilder) top(t reflect.Type) ([]byte, int64, error) {
	ut, err := b.e.userType(t)
	if err != nil {
		return nil, 0, err
	}
	rt := ut.base
	if ut.ext != 0 {
		rt = ut.user
	}
	sent, err := b.sendType(rt)
	if err != nil {
		return nil, 0, err
	}
	if !sent {
		info, err := b.getTypeInfo(ut)
		if err != nil {
			return nil, 0, err
		}
		b.sent[rt] = info.id
	}
	id, ok := b.sent[ut.base]
	if !ok || id == 0 {
		return nil, 0, fmt.Errorf("detgob: internal error: no type id for %s", t)
	}
	return b.out, id, nil
}

// writeTypeMessage appends the message (-id, wireType) for info.
func (b *typeBuilder) writeTypeMessage(info *winfo) error {
	t := info.t
	if info.wire == wireNone || t == nil {
		return fmt.Errorf("detgob: internal error: no wire type for type id %d", info.id)
	}
	// A zero id here means a recursive type encoding/gob itself would
	// describe wrongly; refuse rather than write a stream that won't decode.
	if info.id == 0 || t.id == 0 ||
		(t.kind == wArray || t.kind == wSlice || t.kind == wMap) && t.elem == 0 ||
		t.kind == wMap && t.key == 0 {
		return errors.New("detgob: unsupported recursive type")
	}
	m := appendInt(b.msg[:0], -info.id)
	m = appendUint(m, uint64(info.wire+1)) // wireType field delta
	m = append(m, 1)                       // CommonType: field 0
	m = appendCommon(m, t.name, t.id)
	switch info.wire {
	case wireArray:
		m = appendIDFields(m, t.elem, int64(t.length))
	case wireSlice:
		m = appendIDFields(m, t.elem)
	case wireMap:
		m = appendIDFields(m, t.key, t.elem)
	case wireStruct:
		if len(t.fields) > 0 {
			m = append(m, 1) // Field: field 1
			m = appendUint(m, uint64(len(t.fields)))
			for _, f := range t.fields {
				if f.id == 0 {
					return errors.New("detgob: unsupported recursive type")
				}
				m = appendCommon(m, f.name, f.id) // fieldType{Name, Id}
			}
		}
	}
	m = append(m, 0, 0) // end of the type struct, end of wireType
	b.msg = m
	b.out = appendUint(b.out, uint64(len(m)))
	b.out = append(b.out, m...)
	return nil
}

// appendCommon appends a struct {Name string; Id typeId} (CommonType and
// fieldType have that shape), omitting zero fields.
func appendCommon(m []byte, name string, id int64) []byte {
	delta := uint64(1)
	if name != "" {
		m = appendUint(m, delta)
		m = appendString(m, name)
	} else {
		delta++
	}
	if id != 0 {
		m = appendUint(m, delta)
		m = appendInt(m, id)
	}
	return append(m, 0)
}

// appendIDFields appends int fields 1, 2, ... of a type struct (after its
// CommonType), omitting zeros.
func appendIDFields(m []byte, vals ...int64) []byte {
	delta := uint64(1)
	for _, v := range vals {
		if v == 0 {
			delta++
			continue
		}
		m = appendUint(m, delta)
		m = appendInt(m, v)
		delta = 1
	}
	return m
}
