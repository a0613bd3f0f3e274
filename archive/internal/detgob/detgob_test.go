package detgob_test

import (
	"bytes"
	"encoding"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive/internal/detgob"
)

// Child-process modes: the test binary re-executed with one of these set
// encodes the named fixture and writes the bytes to stdout. A child has done
// nothing with encoding/gob before, so its encoding/gob output is what gob
// writes "in a fresh process".
const (
	envGob = "DETGOB_CHILD_GOB"    // encode with encoding/gob
	envDet = "DETGOB_CHILD_DETGOB" // encode with detgob.Marshal
)

func TestMain(m *testing.M) {
	if name := os.Getenv(envGob); name != "" {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(fixture(name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Stdout.Write(buf.Bytes())
		os.Exit(0)
	}
	if name := os.Getenv(envDet); name != "" {
		b, err := detgob.Marshal(fixture(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Stdout.Write(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child runs the test binary in the given mode for fixture name.
func child(t *testing.T, env, name string) []byte {
	t.Helper()
	out, err := childRun(env, name)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func childRun(env, name string) ([]byte, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("child %s=%s: %v: %s", env, name, err, stderr.String())
	}
	return out, nil
}

// gobRefuses maps fixtures encoding/gob cannot encode to an equivalent one it
// can. kitchenVal is kitchen passed by value: its ptrGob field (GobEncode on
// a pointer receiver) is then unaddressable and gob fails; detgob copies the
// field to take its address and must write what gob writes for the pointer
// form.
var gobRefuses = map[string]string{"kitchenVal": "kitchen"}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := detgob.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	return b
}

// decode decodes a gob stream into a fresh value of v's type and returns it
// (same type as v).
func decode(t testing.TB, b []byte, v any) any {
	t.Helper()
	p := newOf(v)
	dec := gob.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(p); err != nil {
		t.Fatalf("gob decode %T: %v\n%s", v, err, hex.Dump(b[:min(len(b), 512)]))
	}
	// The stream must hold exactly one value.
	var extra any
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("gob stream of %T holds more than one value", v)
	}
	return reflect.ValueOf(p).Elem().Interface()
}

// splitMessages splits a gob stream into its messages (length prefix
// stripped).
func splitMessages(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var msgs [][]byte
	for len(b) > 0 {
		n, w := gobUint(b)
		if w == 0 || uint64(len(b)-w) < n {
			t.Fatalf("bad message framing")
		}
		msgs = append(msgs, b[w:w+int(n)])
		b = b[w+int(n):]
	}
	return msgs
}

func gobUint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	n := int(-int8(b[0]))
	if n > 8 || len(b) < 1+n {
		return 0, 0
	}
	var x uint64
	for _, c := range b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	return x, 1 + n
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	gobEncoderType = reflect.TypeFor[gob.GobEncoder]()
	binMarshalType = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// expect returns the value encoding/gob's decoder should produce for v,
// constructed from gob's documented rules rather than by running gob: zero
// struct fields (0, "", false, empty slices, nil maps, nil pointers, zero
// GobEncoders) are not transmitted and so decode as zero; empty slices
// always decode as nil; maps that are sent decode non-nil, and a nil map in
// an element position is sent as empty; unexported fields are not sent;
// time.Time goes through its binary form (which keeps only the zone offset).
func expect(v any) any {
	out, _ := norm(reflect.ValueOf(v), true)
	return out.Interface()
}

// norm returns the decoded form of v and, for struct-field positions
// (elem false), whether gob omits the field.
func norm(v reflect.Value, elem bool) (reflect.Value, bool) {
	t := v.Type()
	out := reflect.New(t).Elem()
	if t.Implements(gobEncoderType) || t.Implements(binMarshalType) {
		if t.Kind() == reflect.Pointer {
			if v.IsNil() {
				return out, true
			}
			p := reflect.New(t.Elem())
			p.Elem().Set(extRoundTrip(v.Elem()))
			out.Set(p)
			return out, false
		}
		if !elem && v.IsZero() {
			return out, true
		}
		out.Set(extRoundTrip(v))
		return out, false
	}
	if reflect.PointerTo(t).Implements(gobEncoderType) || reflect.PointerTo(t).Implements(binMarshalType) {
		out.Set(v)
		return out, false // pointer receiver: never zero
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return out, true
		}
		ev, omit := norm(v.Elem(), elem)
		if omit {
			return out, true
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(ev)
		out.Set(p)
		return out, false
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			fv, omit := norm(v.Field(i), false)
			if !omit {
				out.Field(i).Set(fv)
			}
		}
		return out, false
	case reflect.Slice:
		if v.Len() == 0 {
			return out, true
		}
		s := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			ev, _ := norm(v.Index(i), true)
			s.Index(i).Set(ev)
		}
		out.Set(s)
		return out, false
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			ev, _ := norm(v.Index(i), true)
			out.Index(i).Set(ev)
		}
		return out, false
	case reflect.Map:
		if v.IsNil() && !elem {
			return out, true
		}
		m := reflect.MakeMap(t)
		for it := v.MapRange(); it.Next(); {
			k, _ := norm(it.Key(), true)
			e, _ := norm(it.Value(), true)
			m.SetMapIndex(k, e)
		}
		out.Set(m)
		return out, false
	default:
		out.Set(v)
		return out, !elem && v.IsZero()
	}
}

func extRoundTrip(v reflect.Value) reflect.Value {
	if v.Type() != timeType {
		return v
	}
	b, err := v.Interface().(time.Time).MarshalBinary()
	if err != nil {
		panic(err)
	}
	var t time.Time
	if err := t.UnmarshalBinary(b); err != nil {
		panic(err)
	}
	return reflect.ValueOf(t)
}

func allFixtureNames() []string {
	var names []string
	for n := range fixtures {
		names = append(names, n)
	}
	for n := range multiFixtures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestRoundTrip decodes detgob's output with encoding/gob into fresh values
// and compares them with expectations built from gob's rules.
func TestRoundTrip(t *testing.T) {
	for _, name := range allFixtureNames() {
		t.Run(name, func(t *testing.T) {
			v := fixture(name)
			got := decode(t, mustMarshal(t, v), v)
			// A top-level pointer decodes into a pointer to a fresh value.
			want := expect(v)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip mismatch\n got: %#v\nwant: %#v", got, want)
			}
		})
	}
}

// TestRoundTripDetails spells out the expectations for the clip types that
// matter, independently of the generic normaliser.
func TestRoundTripDetails(t *testing.T) {
	nodes := fullNodes()
	got := decode(t, mustMarshal(t, nodes), nodes).([]*common.ClipNode)
	if !reflect.DeepEqual(got, nodes) { // no empty slices or maps in ClipNode
		t.Fatalf("nodes: got %+v", got)
	}
	if got[1].Remote != nil || got[4].Remote == nil || *got[4].Remote != (common.RemoteRef{}) {
		t.Fatalf("Remote nil/non-nil not preserved: %+v %+v", got[1].Remote, got[4].Remote)
	}

	o := ociSingle()
	g := decode(t, mustMarshal(t, o), o).(*common.OCIStorageInfo)
	m := g.ImageMetadata
	switch {
	case g.ZstdIdxByLayer == nil || len(g.ZstdIdxByLayer) != 0:
		t.Errorf("empty non-nil map must decode empty non-nil, got %#v", g.ZstdIdxByLayer)
	case m.Labels == nil || len(m.Labels) != 0:
		t.Errorf("empty Labels: got %#v", m.Labels)
	case m.Volumes != nil:
		t.Errorf("nil Volumes: got %#v", m.Volumes)
	case m.Cmd != nil:
		t.Errorf("empty Cmd must decode nil, got %#v", m.Cmd)
	case len(m.ExposedPorts) != 1:
		t.Errorf("ExposedPorts: %#v", m.ExposedPorts)
	case !m.Created.Equal(tNs) || m.Created.Nanosecond() != 123456789:
		t.Errorf("Created: %v", m.Created)
	case func() bool { _, off := m.Created.Zone(); return off != 3600 }():
		t.Errorf("Created zone offset lost: %v", m.Created)
	case !reflect.DeepEqual(g.GzipIdxByLayer, o.GzipIdxByLayer):
		t.Errorf("GzipIdxByLayer: %#v", g.GzipIdxByLayer)
	case m.LayersData[1].Annotations != nil || m.LayersData[0].Annotations["k"] != "v":
		t.Errorf("LayersData: %#v", m.LayersData)
	}

	// Zero time in a struct is omitted and decodes zero.
	z := &common.ImageMetadata{Name: "z"}
	if g := decode(t, mustMarshal(t, z), z).(*common.ImageMetadata); !g.Created.IsZero() || g.Name != "z" {
		t.Errorf("zero Created: %+v", g)
	}

	// Wrapper holding a nested detgob stream (how clip reads storage info).
	data := mustMarshal(t, o)
	w := common.StorageInfoWrapper{Type: "oci", Data: data}
	gw := decode(t, mustMarshal(t, &w), &w).(*common.StorageInfoWrapper)
	if gw.Type != "oci" || !bytes.Equal(gw.Data, data) {
		t.Fatalf("wrapper: %+v", gw)
	}
	var inner common.OCIStorageInfo
	if err := gob.NewDecoder(bytes.NewReader(gw.Data)).Decode(&inner); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&inner, expect(o)) {
		t.Fatalf("nested storage info mismatch")
	}

	// Extreme values.
	k := kitchenSink()
	gk := decode(t, mustMarshal(t, k), k).(*kitchen)
	if gk.U64 != math.MaxUint64 || gk.I64 != math.MinInt64 || gk.I8 != math.MinInt8 || gk.F64 != -math.MaxFloat64 ||
		gk.PZero != nil || **gk.PPS != "pps" || gk.PG.A != 7 || gk.VG != -12 || gk.BM.X != "bm" || gk.Owner.Gid != 3 ||
		gk.private != 0 || gk.Hidden != 0 || gk.Tree.Kids[0].Up["root"].Name != "root-copy" {
		t.Fatalf("kitchen: %+v", gk)
	}
}

// TestMatchesFreshGob compares detgob's bytes with encoding/gob's bytes
// produced in a fresh child process. This is a byte-for-byte comparison, not
// just decode-and-compare: detgob ports gob's type-id assignment and
// type-sending order, so for values whose maps have at most one entry the
// streams must be identical (gob's only other source of variation is map
// order). Values with multi-entry maps are checked structurally: same type
// definitions, same length, same value after decoding.
func TestMatchesFreshGob(t *testing.T) {
	for _, name := range allFixtureNames() {
		_, multi := multiFixtures[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			gobName := name
			if alias, ok := gobRefuses[name]; ok {
				if _, err := childRun(envGob, name); err == nil || !strings.Contains(err.Error(), "unaddressable") {
					t.Fatalf("expected encoding/gob to refuse %s, got %v", name, err)
				}
				gobName = alias
			}
			want := child(t, envGob, gobName)
			v := fixture(name)
			got := mustMarshal(t, v)
			if !multi {
				if !bytes.Equal(got, want) {
					t.Fatalf("detgob and fresh encoding/gob differ\ndetgob:\n%s\ngob:\n%s", hex.Dump(got), hex.Dump(want))
				}
				return
			}
			if len(got) != len(want) {
				t.Fatalf("length: detgob %d, gob %d", len(got), len(want))
			}
			gm, wm := splitMessages(t, got), splitMessages(t, want)
			if len(gm) != len(wm) {
				t.Fatalf("messages: detgob %d, gob %d", len(gm), len(wm))
			}
			for i := 0; i < len(gm)-1; i++ {
				if !bytes.Equal(gm[i], wm[i]) {
					t.Fatalf("type definition %d differs:\n%x\n%x", i, gm[i], wm[i])
				}
			}
			if !reflect.DeepEqual(decode(t, got, v), decode(t, want, v)) {
				t.Fatalf("decoded values differ")
			}
		})
	}
}

// TestGolden pins a few streams (taken from encoding/gob in a fresh
// process), so a format change shows up even without a child process.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		v   any
		hex string
	}{
		{7, "0304000e"},
		{common.StorageInfoWrapper{Type: "oci", Data: []byte{1}},
			"317f030101125374" + hex.EncodeToString([]byte("orageInfoWrapper")) +
				"01ff8000010201045479706501" + "0c00010444617461010a0000000bff8001036f6369010101" + "00"},
		{[]*common.ClipNode{{Path: "/a", Remote: &common.RemoteRef{LayerDigest: "x"}}}, "" +
			"0dff87020102ff880001ff8000006a7f030102ff8000010801084e6f646554797065010c00010450617468010c0001044174747201ff8200" +
			"0106546172676574010c00010b436f6e74656e7448617368010c00010744617461506f730104000107446174614c656e010400010652656d" +
			"6f746501ff86000000ffb5ff81030101044174747201ff8200010f0103496e6f010600010453697a650106000106426c6f636b7301060001" +
			"054174696d6501060001054d74696d6501060001054374696d6501060001094174696d656e73656301060001094d74696d656e7365630106" +
			"0001094374696d656e73656301060001044d6f646501060001054e6c696e6b01060001054f776e657201ff84000104526465760106000107" +
			"426c6b73697a65010600010750616464696e67010600000023ff83030101054f776e657201ff840001020103556964010600010347696401" +
			"060000003fff850301010952656d6f746552656601ff86000103010b4c61796572446967657374010c000107554f66667365740104000107" +
			"554c656e677468010400000012ff88000102022f61010c0000050101780000"},
	} {
		got := mustMarshal(t, tc.v)
		want, err := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T:\n got %x\nwant %x", tc.v, got, want)
		}
	}
}

// TestDeterministic marshals values with many-entry maps repeatedly, with
// fresh and shared Encoders, and after the process has used encoding/gob on
// other types (which moves gob's global type ids).
func TestDeterministic(t *testing.T) {
	vals := []any{ociMulti(200), randOCI(99, 30), kitchenMulti(), map[string]int{"b": 2, "a": 1, "c": 3}}
	first := make([][]byte, len(vals))
	shared := detgob.NewEncoder()
	for i, v := range vals {
		first[i] = mustMarshal(t, v)
	}
	check := func(when string) {
		t.Helper()
		for i, v := range vals {
			for n := 0; n < 50; n++ {
				enc := detgob.NewEncoder()
				if n%2 == 0 {
					enc = shared
				}
				b, err := enc.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, first[i]) {
					t.Fatalf("%s: %T: run %d differs from the first", when, v, n)
				}
			}
		}
	}
	check("before gob use")

	// Give encoding/gob's global tables a history: unrelated types first,
	// then the same types in another order, encoded and decoded.
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	type other struct {
		X map[int][]string
		Y *struct{ Z float64 }
	}
	for _, v := range []any{other{X: map[int][]string{1: {"a"}}}, []common.ZstdFrame{{COff: 1, CLen: 2, UOff: 3, ULen: 4}},
		map[string]*common.ImageMetadata{"m": {Name: "m"}}, kitchenMulti(), ociMulti(5), fullNodes()} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	dec := gob.NewDecoder(&buf)
	var o other
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	check("after gob use")

	// And identical to what a fresh process produces.
	for _, name := range []string{"ociMulti", "kitchenMulti", "ociRandomN", "nodesRandom"} {
		if got, want := mustMarshal(t, fixture(name)), child(t, envDet, name); !bytes.Equal(got, want) {
			t.Fatalf("%s: detgob bytes differ between this process and a fresh one", name)
		}
	}
}

// TestMapOrder checks that map entries are written in sorted key order.
func TestMapOrder(t *testing.T) {
	m := map[string]int{}
	for i := 0; i < 100; i++ {
		m[fmt.Sprintf("%03d", (i*37)%100)] = i
	}
	b := mustMarshal(t, m)
	msgs := splitMessages(t, b)
	val := msgs[len(msgs)-1]
	// Value message: type id, singleton delta 0, count, then entries.
	_, w := gobUint(val)
	val = val[w+1:]
	n, w := gobUint(val)
	val = val[w:]
	if n != 100 {
		t.Fatalf("count %d", n)
	}
	var keys []string
	for range n {
		l, w := gobUint(val)
		keys = append(keys, string(val[w:w+int(l)]))
		val = val[w+int(l):]
		_, w = gobUint(val)
		val = val[w:]
	}
	if !slices.IsSorted(keys) || len(keys) != 100 {
		t.Fatalf("keys not sorted: %v", keys)
	}

	// Integer keys sort numerically, negative first.
	mi := map[int64]bool{5: true, -5: true, 0: true, math.MaxInt64: true, math.MinInt64: true}
	val = lastMessage(t, mustMarshal(t, mi))
	var got []int64
	_, w = gobUint(val)
	val = val[w+1:]
	n, w = gobUint(val)
	val = val[w:]
	for range n {
		x, w := gobUint(val)
		i := int64(x >> 1)
		if x&1 != 0 {
			i = ^i
		}
		got = append(got, i)
		val = val[w+1:] // key, then one-byte bool
	}
	if !slices.Equal(got, []int64{math.MinInt64, -5, 0, 5, math.MaxInt64}) {
		t.Fatalf("int keys: %v", got)
	}

	// NaN keys (several entries with equal key bytes) are still ordered
	// deterministically, by value bytes.
	nan := map[float64]string{}
	for i := 0; i < 20; i++ {
		nan[math.NaN()] = fmt.Sprint(i)
	}
	nb := mustMarshal(t, nan)
	for i := 0; i < 20; i++ {
		if !bytes.Equal(mustMarshal(t, nan), nb) {
			t.Fatal("NaN-keyed map not deterministic")
		}
	}
	var back map[float64]string
	if err := gob.NewDecoder(bytes.NewReader(nb)).Decode(&back); err != nil || len(back) != 20 {
		t.Fatalf("NaN map decode: %v, %d entries", err, len(back))
	}
}

func lastMessage(t *testing.T, b []byte) []byte {
	msgs := splitMessages(t, b)
	return msgs[len(msgs)-1]
}

// TestProperty round-trips random values (fixed seeds).
func TestProperty(t *testing.T) {
	enc := detgob.NewEncoder()
	for seed := uint64(0); seed < 300; seed++ {
		o := randOCI(seed, 6)
		b, err := enc.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := decode(t, b, o), expect(o); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: OCIStorageInfo mismatch\n got %#v\nwant %#v", seed, got, want)
		}
		b2, _ := detgob.Marshal(o)
		if !bytes.Equal(b, b2) {
			t.Fatalf("seed %d: shared and fresh Encoder differ", seed)
		}

		nodes := randNodes(seed, int(seed%17))
		nb, err := enc.Marshal(nodes)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := decode(t, nb, nodes), expect(nodes); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: nodes mismatch\n got %#v\nwant %#v", seed, got, want)
		}
	}
}

// TestEncoderConcurrent shares one Encoder between goroutines (run with
// -race).
func TestEncoderConcurrent(t *testing.T) {
	enc := detgob.NewEncoder()
	vals := []any{ociMulti(20), randNodes(3, 50), kitchenMulti(), common.StorageInfoWrapper{Type: "x"}}
	want := make([][]byte, len(vals))
	for i, v := range vals {
		want[i] = mustMarshal(t, v)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20; n++ {
				i := (g + n) % len(vals)
				b, err := enc.Marshal(vals[i])
				if err != nil || !bytes.Equal(b, want[i]) {
					errs <- fmt.Errorf("goroutine %d: %T: err %v, equal %v", g, vals[i], err, bytes.Equal(b, want[i]))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type P *P

// TestErrors checks unsupported values fail with an error, not a panic, and
// that a failure does not poison the Encoder.
func TestErrors(t *testing.T) {
	var nilNode *common.ClipNode
	var p P
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, "nil value"},
		{"nil pointer", nilNode, "nil pointer"},
		{"chan", make(chan int), "unsupported type"},
		{"func", func() {}, "unsupported type"},
		{"chan field", struct{ C chan int }{}, "unsupported type chan int"},
		{"func field", &struct {
			A int
			F func()
		}{}, "unsupported type func()"},
		{"interface field", struct{ I any }{I: 1}, "unsupported type interface {}"},
		{"error field", struct{ E error }{}, "unsupported type error"},
		{"unsafe pointer", struct{ U unsafe.Pointer }{}, "unsupported type unsafe.Pointer"},
		{"chan in map", map[string]chan int{}, "unsupported type"},
		{"no exported fields", struct{ a int }{}, "no exported fields"},
		{"recursive pointer", p, "recursive pointer type"},
		{"nil slice element", []*common.ClipNode{{}, nil}, "nil element"},
		{"nil map value", &common.OCIStorageInfo{GzipIdxByLayer: map[string]*common.GzipIndex{"a": nil}}, "nil element"},
		{"nil time in slice", []*time.Time{nil}, "nil element"},
		{"GobEncode error", struct{ F failGob }{F: failGob{1}}, "failGob refuses"},
		{"GobEncode error top", failGob{}, "failGob refuses"},
		{"cyclic value", cyclicTree(), "cyclic value"},
		{"cyclic map", cyclicMap(), "cyclic value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := detgob.NewEncoder()
			for range 2 { // the second call uses the cached (or re-failed) plan
				b, err := enc.Marshal(tc.v)
				if err == nil {
					t.Fatalf("no error; got %x", b)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q does not mention %q", err, tc.want)
				}
				if !strings.HasPrefix(err.Error(), "detgob: ") && tc.name != "GobEncode error" && tc.name != "GobEncode error top" {
					t.Fatalf("error %q lacks the package prefix", err)
				}
			}
			// The Encoder still works.
			if _, err := enc.Marshal(fullNodes()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTopLevelValueOrPointer: a value and a pointer to it encode alike
// (encoding/gob indirects top-level pointers too).
func TestTopLevelValueOrPointer(t *testing.T) {
	o := ociSingle()
	if !bytes.Equal(mustMarshal(t, o), mustMarshal(t, *o)) {
		t.Fatal("*OCIStorageInfo and OCIStorageInfo encode differently")
	}
	i := 3
	pi := &i
	if !bytes.Equal(mustMarshal(t, &pi), mustMarshal(t, 3)) {
		t.Fatal("**int and int encode differently")
	}
}

func cyclicTree() *tree {
	t := &tree{Name: "loop"}
	t.Kids = []*tree{{Name: "kid", Kids: []*tree{t}}}
	return t
}

type selfMap map[string]selfMap

func cyclicMap() selfMap {
	m := selfMap{}
	m["me"] = m
	return m
}

// TestHintDoesNotLeak: after a big value, a small one of the same type
// does not come back with the big value's buffer.
func TestHintDoesNotLeak(t *testing.T) {
	enc := detgob.NewEncoder()
	big := make([]string, 1<<16)
	for i := range big {
		big[i] = strings.Repeat("x", 64)
	}
	if _, err := enc.Marshal(big); err != nil {
		t.Fatal(err)
	}
	small, err := enc.Marshal([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if cap(small) > 1<<20 {
		t.Fatalf("small output keeps %d bytes of capacity", cap(small))
	}
	if !bytes.Equal(small, mustMarshal(t, []string{"a"})) {
		t.Fatal("small output differs")
	}
}

// TestDeepButFinite: deep acyclic recursive values still encode.
func TestDeepButFinite(t *testing.T) {
	root := &tree{Name: "0"}
	for n, i := root, 1; i < 3_000; i++ {
		n.Kids = []*tree{{Name: fmt.Sprint(i)}}
		n = n.Kids[0]
	}
	got := decode(t, mustMarshal(t, root), root).(*tree)
	for i := 0; i < 3_000; i++ {
		if got.Name != fmt.Sprint(i) {
			t.Fatalf("level %d: %q", i, got.Name)
		}
		if i < 2_999 {
			got = got.Kids[0]
		}
	}
}
