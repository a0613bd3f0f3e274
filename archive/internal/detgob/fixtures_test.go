package detgob_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Test-only types exercising kinds and encoding/gob corner cases the clip
// types do not have.

// ptrGob implements GobEncoder with a pointer receiver (encIndir -1).
type ptrGob struct{ A int }

func (p *ptrGob) GobEncode() ([]byte, error) { return []byte{'p', byte(p.A)}, nil }
func (p *ptrGob) GobDecode(b []byte) error {
	if len(b) != 2 || b[0] != 'p' {
		return errors.New("bad ptrGob")
	}
	p.A = int(b[1])
	return nil
}

// valGob is a named int implementing GobEncoder with a value receiver.
type valGob int

func (v valGob) GobEncode() ([]byte, error) { return []byte(fmt.Sprintf("v%d", int(v))), nil }
func (v *valGob) GobDecode(b []byte) error {
	_, err := fmt.Sscanf(string(b), "v%d", (*int)(v))
	return err
}

// binM implements only encoding.BinaryMarshaler (BinaryMarshalerT on the
// wire).
type binM struct{ X string }

func (m binM) MarshalBinary() ([]byte, error) { return []byte("b:" + m.X), nil }
func (m *binM) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return errors.New("bad binM")
	}
	m.X = string(b[2:])
	return nil
}

// xbyte is a byte-kind GobEncoder: encoding/gob still sends []xbyte as raw
// bytes, but [N]xbyte element by element through GobEncode.
type xbyte uint8

func (x xbyte) GobEncode() ([]byte, error) { return []byte{'x', byte(x)}, nil }
func (x *xbyte) GobDecode(b []byte) error {
	if len(b) != 2 || b[0] != 'x' {
		return errors.New("bad xbyte")
	}
	*x = xbyte(b[1])
	return nil
}

// failGob's GobEncode fails.
type failGob struct{ A int }

func (failGob) GobEncode() ([]byte, error) { return nil, errors.New("failGob refuses") }

type Inner struct {
	U8  uint8
	I16 int16
}

type embedded struct{ Hidden int } // unexported embedded type: not sent

type tree struct {
	Name string
	Kids []*tree
	Up   map[string]*tree
}

type kitchen struct {
	B           bool
	I           int
	I8          int8
	I16         int16
	I32         int32
	I64         int64
	U           uint
	U8          uint8
	U16         uint16
	U32         uint32
	U64         uint64
	Uptr        uintptr
	F32         float32
	F64         float64
	C64         complex64
	C128        complex128
	S           string
	Bytes       []byte
	PI          *int
	PPS         **string
	PZero       *int // points at 0: omitted like a zero int
	Arr         [3]uint8
	ZArr        [2]int // zero array: still sent
	Owns        [2]fuse.Owner
	Inner       // embedded struct: a field named Inner
	*fuse.Owner // embedded pointer
	embedded
	private  int
	MS       map[string][]int
	MI       map[int]string
	MB       map[bool]int8
	MF       map[float64]string // keys ordered by encoded bytes
	MEmpty   map[string]int     // non-nil, empty: sent
	MNil     map[string]int     // nil: omitted
	Nested   [][]string
	Times    []time.Time
	TimeP    *time.Time // pointer to a GobEncoder (gob allocates an extra id)
	PG       ptrGob
	PGP      *ptrGob
	VG       valGob
	BM       binM
	BMs      []binM
	Tree     *tree
	Empty    struct{}
	EmptyPtr *struct{}
	XB       []xbyte
	XA       [2]xbyte
}

var (
	cet  = time.FixedZone("CET", 3600)
	ist  = time.FixedZone("", 5*3600+30*60)
	tNs  = time.Date(2024, 2, 29, 13, 14, 15, 123456789, cet)
	tIST = time.Date(1999, 12, 31, 23, 59, 59, 1, ist)
)

func fullNodes() []*common.ClipNode {
	return []*common.ClipNode{
		{
			NodeType:    common.FileNode,
			Path:        "/usr/bin/env",
			Attr:        fullAttr(),
			Target:      "",
			ContentHash: "c0ffee",
			DataPos:     -1,
			DataLen:     math.MinInt64,
			Remote:      &common.RemoteRef{LayerDigest: "sha256:aa", UOffset: math.MaxInt64, ULength: -7},
		},
		{NodeType: common.DirNode, Path: "/", Attr: fuse.Attr{Mode: 0o40755, Nlink: 2}},
		{NodeType: common.SymLinkNode, Path: "/bin", Target: "usr/bin", Attr: fuse.Attr{Owner: fuse.Owner{Uid: 1}}},
		{}, // everything zero
		{Path: "/zero-remote", Remote: &common.RemoteRef{}},
	}
}

func fullAttr() fuse.Attr {
	return fuse.Attr{
		Ino: math.MaxUint64, Size: 1 << 40, Blocks: 3, Atime: 1, Mtime: math.MaxUint64 - 1, Ctime: 1 << 63,
		Atimensec: math.MaxUint32, Mtimensec: 999999999, Ctimensec: 1,
		Mode: 0o100644, Nlink: 1, Owner: fuse.Owner{Uid: math.MaxUint32, Gid: 1000},
		Rdev: 5, Blksize: 4096, Padding: 1,
	}
}

// ociSingle has no map with more than one entry, so encoding/gob's own
// output is deterministic for it.
func ociSingle() *common.OCIStorageInfo {
	return &common.OCIStorageInfo{
		RegistryURL: "https://registry-1.docker.io",
		Repository:  "library/alpine",
		Reference:   "3.19",
		Layers:      []string{"sha256:l1", ""},
		GzipIdxByLayer: map[string]*common.GzipIndex{
			"sha256:l1": {LayerDigest: "sha256:l1", Checkpoints: []common.GzipCheckpoint{{}, {COff: 100, UOff: -3}}},
		},
		ZstdIdxByLayer:          map[string]*common.ZstdIndex{},
		DecompressedHashByLayer: map[string]string{"sha256:l1": "sha256:d1"},
		ImageMetadata: &common.ImageMetadata{
			Name: "alpine", Digest: "sha256:m", RepoTags: []string{"alpine:3.19"},
			Created:      tNs,
			Labels:       map[string]string{},
			Architecture: "amd64", Os: "linux",
			Env:          []string{"PATH=/bin"},
			Cmd:          []string{},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
			Volumes:      nil,
			LayersData: []common.LayerMetadata{
				{MIMEType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: "sha256:l1", Size: 42,
					Annotations: map[string]string{"k": "v"}},
				{},
			},
		},
	}
}

// ociMulti has multi-entry maps everywhere.
func ociMulti(n int) *common.OCIStorageInfo {
	o := &common.OCIStorageInfo{
		RegistryURL:             "r",
		Repository:              "repo",
		GzipIdxByLayer:          map[string]*common.GzipIndex{},
		ZstdIdxByLayer:          map[string]*common.ZstdIndex{},
		DecompressedHashByLayer: map[string]string{},
		ImageMetadata: &common.ImageMetadata{
			Created:      tIST,
			Labels:       map[string]string{},
			ExposedPorts: map[string]struct{}{},
			Volumes:      map[string]struct{}{},
		},
	}
	for i := 0; i < n; i++ {
		d := fmt.Sprintf("sha256:%064x", i*7919)
		o.Layers = append(o.Layers, d)
		o.GzipIdxByLayer[d] = &common.GzipIndex{LayerDigest: d, Checkpoints: []common.GzipCheckpoint{{COff: int64(i), UOff: int64(2 * i)}}}
		o.ZstdIdxByLayer[d] = &common.ZstdIndex{LayerDigest: d, Frames: []common.ZstdFrame{{COff: 1, CLen: 2, UOff: 3, ULen: int64(i)}}}
		o.DecompressedHashByLayer[d] = fmt.Sprintf("h%d", i)
		o.ImageMetadata.Labels[fmt.Sprintf("label.%d", i)] = fmt.Sprint(i)
		o.ImageMetadata.ExposedPorts[fmt.Sprintf("%d/tcp", 1000+i)] = struct{}{}
		o.ImageMetadata.Volumes[fmt.Sprintf("/vol/%d", i)] = struct{}{}
	}
	return o
}

func kitchenSink() *kitchen {
	i, s := 42, "pps"
	ps := &s
	zero := 0
	t := tIST
	root := &tree{Name: "root"}
	kid := &tree{Name: "kid", Up: map[string]*tree{"root": {Name: "root-copy"}}}
	root.Kids = []*tree{kid, {Name: "leaf"}}
	return &kitchen{
		B: true, I: -1, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MinInt64,
		U: math.MaxUint, U8: 255, U16: 65535, U32: math.MaxUint32, U64: math.MaxUint64, Uptr: 7,
		F32: 1.5, F64: -math.MaxFloat64, C64: complex(1, -2), C128: complex(math.Inf(1), 0.25),
		S: "héllo\x00", Bytes: []byte{0, 1, 2, 255},
		PI: &i, PPS: &ps, PZero: &zero,
		Arr:   [3]uint8{1, 200, 3},
		Owns:  [2]fuse.Owner{{Uid: 1}, {}},
		Inner: Inner{U8: 9}, Owner: &fuse.Owner{Gid: 3},
		embedded: embedded{Hidden: 5}, private: 6,
		MS:     map[string][]int{"a": {1, -1}},
		MI:     map[int]string{-3: "minus three"},
		MB:     map[bool]int8{true: -1},
		MF:     map[float64]string{2.5: "x"},
		MEmpty: map[string]int{},
		Nested: [][]string{{"a"}, {}, {"b", ""}},
		Times:  []time.Time{tNs, {}, tIST},
		TimeP:  &t,
		PG:     ptrGob{A: 7}, PGP: &ptrGob{A: 8},
		VG: valGob(-12),
		BM: binM{X: "bm"}, BMs: []binM{{"one"}, {}},
		Tree:     root,
		EmptyPtr: &struct{}{},
		XB:       []xbyte{1, 2, 250},
		XA:       [2]xbyte{7, 0},
	}
}

// kitchenMulti is kitchenSink with multi-entry maps of each key kind.
func kitchenMulti() *kitchen {
	k := kitchenSink()
	for i := -20; i < 20; i++ {
		k.MS[fmt.Sprint("k", i)] = []int{i}
		k.MI[i*1000003] = fmt.Sprint(i)
		k.MF[float64(i)/3] = fmt.Sprint(i)
	}
	k.MB[false] = 1
	k.MF[math.Inf(-1)] = "-inf"
	return k
}

func randString(r *rand.Rand, max int) string {
	n := r.IntN(max + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randInt64(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return int64(r.IntN(300)) - 150
	default:
		return int64(r.Uint64())
	}
}

func randUint64(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return uint64(r.IntN(300))
	default:
		return r.Uint64() >> r.IntN(64)
	}
}

func randNode(r *rand.Rand) *common.ClipNode {
	n := &common.ClipNode{
		NodeType:    []common.ClipNodeType{"", common.DirNode, common.FileNode, common.SymLinkNode}[r.IntN(4)],
		Path:        randString(r, 40),
		Target:      randString(r, 3),
		ContentHash: randString(r, 2),
		DataPos:     randInt64(r),
		DataLen:     randInt64(r),
		Attr: fuse.Attr{
			Ino: randUint64(r), Size: randUint64(r), Blocks: randUint64(r),
			Atime: randUint64(r), Mtime: randUint64(r), Ctime: randUint64(r),
			Atimensec: uint32(randUint64(r)), Mtimensec: uint32(randUint64(r)), Ctimensec: uint32(randUint64(r)),
			Mode: uint32(randUint64(r)), Nlink: uint32(randUint64(r)),
			Owner: fuse.Owner{Uid: uint32(randUint64(r)), Gid: uint32(randUint64(r))},
			Rdev:  uint32(randUint64(r)), Blksize: uint32(randUint64(r)), Padding: uint32(randUint64(r)),
		},
	}
	if r.IntN(2) == 0 {
		n.Remote = &common.RemoteRef{LayerDigest: randString(r, 10), UOffset: randInt64(r), ULength: randInt64(r)}
	}
	return n
}

func randNodes(seed uint64, n int) []*common.ClipNode {
	r := rand.New(rand.NewPCG(seed, 1))
	nodes := make([]*common.ClipNode, n)
	for i := range nodes {
		nodes[i] = randNode(r)
	}
	return nodes
}

func randStrings(r *rand.Rand) []string {
	if r.IntN(3) == 0 {
		return nil
	}
	s := make([]string, r.IntN(4))
	for i := range s {
		s[i] = randString(r, 5)
	}
	return s
}

func randStringMap(r *rand.Rand, maxN int) map[string]string {
	if r.IntN(3) == 0 {
		return nil
	}
	m := map[string]string{}
	for i := r.IntN(maxN + 1); i > 0; i-- {
		m[randString(r, 6)] = randString(r, 6)
	}
	return m
}

func randSet(r *rand.Rand, maxN int) map[string]struct{} {
	if r.IntN(3) == 0 {
		return nil
	}
	m := map[string]struct{}{}
	for i := r.IntN(maxN + 1); i > 0; i-- {
		m[randString(r, 6)] = struct{}{}
	}
	return m
}

func randTime(r *rand.Rand) time.Time {
	if r.IntN(3) == 0 {
		return time.Time{}
	}
	zones := []*time.Location{time.UTC, cet, ist, time.FixedZone("X", -7*3600-15*60)}
	return time.Unix(int64(r.Uint64()>>30)-1<<32, int64(r.IntN(1e9))).In(zones[r.IntN(len(zones))])
}

// randOCI returns a random OCIStorageInfo; maxN bounds map sizes (use 1 for
// values encoding/gob itself encodes deterministically).
func randOCI(seed uint64, maxN int) *common.OCIStorageInfo {
	r := rand.New(rand.NewPCG(seed, 2))
	o := &common.OCIStorageInfo{
		RegistryURL: randString(r, 8), Repository: randString(r, 8), Reference: randString(r, 8),
		Layers:                  randStrings(r),
		DecompressedHashByLayer: randStringMap(r, maxN),
	}
	if r.IntN(3) != 0 {
		o.GzipIdxByLayer = map[string]*common.GzipIndex{}
		for i := r.IntN(maxN + 1); i > 0; i-- {
			g := &common.GzipIndex{LayerDigest: randString(r, 4)}
			for j := r.IntN(4); j > 0; j-- {
				g.Checkpoints = append(g.Checkpoints, common.GzipCheckpoint{COff: randInt64(r), UOff: randInt64(r)})
			}
			o.GzipIdxByLayer[randString(r, 5)] = g
		}
	}
	if r.IntN(3) != 0 {
		o.ZstdIdxByLayer = map[string]*common.ZstdIndex{}
		for i := r.IntN(maxN + 1); i > 0; i-- {
			z := &common.ZstdIndex{LayerDigest: randString(r, 4)}
			for j := r.IntN(3); j > 0; j-- {
				z.Frames = append(z.Frames, common.ZstdFrame{COff: randInt64(r), CLen: randInt64(r), UOff: randInt64(r), ULen: randInt64(r)})
			}
			o.ZstdIdxByLayer[randString(r, 5)] = z
		}
	}
	if r.IntN(4) != 0 {
		m := &common.ImageMetadata{
			Name: randString(r, 5), Digest: randString(r, 5), RepoTags: randStrings(r),
			Created: randTime(r), DockerVersion: randString(r, 3), Labels: randStringMap(r, maxN),
			Architecture: randString(r, 3), Os: randString(r, 3), Variant: randString(r, 2), Author: randString(r, 2),
			Env: randStrings(r), Cmd: randStrings(r), Entrypoint: randStrings(r),
			User: randString(r, 2), WorkingDir: randString(r, 2),
			ExposedPorts: randSet(r, maxN), Volumes: randSet(r, maxN), StopSignal: randString(r, 2),
			Layers: randStrings(r),
		}
		for i := r.IntN(3); i > 0; i-- {
			m.LayersData = append(m.LayersData, common.LayerMetadata{
				MIMEType: randString(r, 3), Digest: randString(r, 3), Size: randInt64(r),
				Annotations: randStringMap(r, maxN),
			})
		}
		o.ImageMetadata = m
	}
	return o
}

// fixtures are values encoded both here and, by name, in child processes.
// Each must be constructed identically in every process.
var fixtures = map[string]func() any{
	"nodes":        func() any { return fullNodes() },
	"nodesRandom":  func() any { return randNodes(7, 300) },
	"nodesEmpty":   func() any { return []*common.ClipNode{} },
	"node":         func() any { return fullNodes()[0] },
	"wrapper":      func() any { return common.StorageInfoWrapper{Type: "oci", Data: []byte{1}} },
	"wrapperPtr":   func() any { return &common.StorageInfoWrapper{Type: "oci", Data: make([]byte, 300)} },
	"wrapperZero":  func() any { return common.StorageInfoWrapper{} },
	"ociSingle":    func() any { return ociSingle() },
	"ociSingleVal": func() any { return *ociSingle() },
	"ociZero":      func() any { return common.OCIStorageInfo{} },
	"ociRandom1":   func() any { return randOCI(11, 1) },
	"ociRandom2":   func() any { return randOCI(12, 1) },
	"ociRandom3":   func() any { return randOCI(13, 1) },
	"header": func() any {
		h := common.ClipArchiveHeader{ClipFileFormatVersion: 1, IndexLength: 10, IndexPos: 54, StorageInfoPos: -1}
		copy(h.StartBytes[:], common.ClipFileStartBytes)
		copy(h.StorageInfoType[:], "oci")
		return h
	},
	"kitchen":    func() any { return kitchenSink() },
	"kitchenVal": func() any { return *kitchenSink() },
	"int":        func() any { return 7 },
	"intNeg":     func() any { return int64(math.MinInt64) },
	"uintMax":    func() any { return uint64(math.MaxUint64) },
	"string":     func() any { return "hello" },
	"stringZero": func() any { return "" },
	"bytes":      func() any { return []byte("raw") },
	"strings":    func() any { return []string{"a", "", "c"} },
	"float":      func() any { return 3.25 },
	"bool":       func() any { return false },
	"complex":    func() any { return complex64(1i) },
	"array":      func() any { return [4]int16{1, -1, 0, 300} },
	"mapOne":     func() any { return map[string]*common.GzipIndex{"x": {LayerDigest: "x"}} },
	"mapIntOne":  func() any { return map[int]string{3: "x"} },
	"mapEmpty":   func() any { return map[string]int{} },
	"time":       func() any { return tNs },
	"timeZero":   func() any { return time.Time{} },
	"timePtr":    func() any { t := tIST; return &t },
	"valGob":     func() any { return valGob(5) },
	"binM":       func() any { return binM{"top"} },
	"ptrGobPtr":  func() any { return &ptrGob{A: 1} },
	"tree":       func() any { return kitchenSink().Tree },
	"empty":      func() any { return struct{}{} },
	"anon":       func() any { return struct{ A, B []Inner }{A: []Inner{{1, 2}}} },
	"ptrPtr":     func() any { i := 5; p := &i; return &p },
}

// multiFixtures have multi-entry maps: encoding/gob's bytes differ from
// run to run, detgob's must not.
var multiFixtures = map[string]func() any{
	"ociMulti":     func() any { return ociMulti(40) },
	"ociRandomN":   func() any { return randOCI(21, 12) },
	"kitchenMulti": func() any { return kitchenMulti() },
	"mapMany":      func() any { return map[string]int{"b": 2, "a": 1, "c": 3, "": 0} },
}

func fixture(name string) any {
	if f, ok := fixtures[name]; ok {
		return f()
	}
	if f, ok := multiFixtures[name]; ok {
		return f()
	}
	panic("unknown fixture " + name)
}

// newOf returns a pointer to a fresh zero value of v's type.
func newOf(v any) any { return reflect.New(reflect.TypeOf(v)).Interface() }
