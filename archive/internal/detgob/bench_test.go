package detgob_test

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ociclip/ociclip/archive/internal/detgob"
)

const benchNodes = 200_000

var (
	benchOnce  sync.Once
	benchIndex []*common.ClipNode
)

// realisticNodes builds an index shaped like an image's: directories,
// regular files with remote refs and symlinks, sorted-ish paths.
func realisticNodes(n int) []*common.ClipNode {
	r := rand.New(rand.NewPCG(42, 42))
	nodes := make([]*common.ClipNode, 0, n)
	for i := 0; len(nodes) < n; i++ {
		dir := fmt.Sprintf("/usr/lib/python3.11/site-packages/pkg%04d", i)
		nodes = append(nodes, &common.ClipNode{
			NodeType: common.DirNode, Path: dir,
			Attr: fuse.Attr{Ino: uint64(len(nodes) + 1), Mode: 0o40755, Nlink: 2, Mtime: 1700000000, Blksize: 4096},
		})
		for j := 0; j < 20 && len(nodes) < n; j++ {
			size := uint64(r.IntN(1 << 20))
			node := &common.ClipNode{
				NodeType: common.FileNode,
				Path:     fmt.Sprintf("%s/module_%02d.py", dir, j),
				Attr: fuse.Attr{
					Ino: uint64(len(nodes) + 1), Size: size, Blocks: (size + 511) / 512,
					Atime: 1700000000, Mtime: 1700000000 + uint64(j), Ctime: 1700000000,
					Atimensec: uint32(r.IntN(1e9)), Mtimensec: uint32(r.IntN(1e9)),
					Mode: 0o100644, Nlink: 1, Owner: fuse.Owner{Uid: 1000, Gid: 1000}, Blksize: 4096,
				},
				ContentHash: fmt.Sprintf("%064x", r.Uint64()),
				Remote: &common.RemoteRef{
					LayerDigest: "sha256:7264a8db6415046d36d16ba98b79778e18accee6ffa71850405994cffa9be7de",
					UOffset:     int64(r.IntN(1 << 30)), ULength: int64(size),
				},
			}
			if j == 19 {
				node.NodeType, node.Target, node.Remote = common.SymLinkNode, "module_00.py", nil
			}
			nodes = append(nodes, node)
		}
	}
	return nodes
}

func benchData() []*common.ClipNode {
	benchOnce.Do(func() { benchIndex = realisticNodes(benchNodes) })
	return benchIndex
}

// BenchmarkMarshalNodes encodes a 200k-node index with a reused Encoder.
func BenchmarkMarshalNodes(b *testing.B) {
	nodes := benchData()
	enc := detgob.NewEncoder()
	out, err := enc.Marshal(nodes)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Marshal(nodes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalNodesFresh is BenchmarkMarshalNodes with the package-level
// Marshal (plans compiled on every call).
func BenchmarkMarshalNodesFresh(b *testing.B) {
	nodes := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := detgob.Marshal(nodes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGobNodes encodes the same index with encoding/gob, the way clip
// does: a new Encoder writing into a new bytes.Buffer.
func BenchmarkGobNodes(b *testing.B) {
	nodes := benchData()
	var sz bytes.Buffer
	if err := gob.NewEncoder(&sz).Encode(nodes); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sz.Len()))
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(nodes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalStorageInfo encodes a 50-layer OCIStorageInfo (map
// sorting).
func BenchmarkMarshalStorageInfo(b *testing.B) {
	info := ociMulti(50)
	enc := detgob.NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Marshal(info); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGobStorageInfo is BenchmarkMarshalStorageInfo with encoding/gob.
func BenchmarkGobStorageInfo(b *testing.B) {
	info := ociMulti(50)
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(info); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchData checks the benchmark index round-trips (ClipNode has no
// slices or maps, so the decoded value must equal the input exactly).
func TestBenchData(t *testing.T) {
	nodes := realisticNodes(5000)
	if got := decode(t, mustMarshal(t, nodes), nodes); !reflect.DeepEqual(got, nodes) {
		t.Fatal("benchmark index does not round-trip")
	}
}
