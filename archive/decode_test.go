package archive

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/beam-cloud/clip/pkg/common"
)

func encodeNodes(t *testing.T, nodes []*common.ClipNode, ext *Extension) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, nodes, &common.OCIStorageInfo{}, ext); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeRejectsBadIndex: an index whose nodes a reader cannot trust
// (lookups are binary searches by path; paths must stay inside the root;
// data ranges must not be negative or overflow) is ErrCorruptArchive.
func TestDecodeRejectsBadIndex(t *testing.T) {
	dir := func(p string) *common.ClipNode { return &common.ClipNode{Path: p, NodeType: common.DirNode} }
	file := func(p string, off, n int64) *common.ClipNode {
		return &common.ClipNode{Path: p, NodeType: common.FileNode, Remote: &common.RemoteRef{LayerDigest: "sha256:x", UOffset: off, ULength: n}}
	}
	good := []*common.ClipNode{dir("/"), dir("/a"), file("/a/b", 512, 10), dir("/b")}
	if a, err := Decode(encodeNodes(t, good, nil)); err != nil || len(a.Nodes) != 4 {
		t.Fatalf("good index: %v", err)
	}
	for name, nodes := range map[string][]*common.ClipNode{
		"unsorted":          {dir("/"), dir("/b"), dir("/a")},
		"duplicate":         {dir("/"), dir("/a"), dir("/a")},
		"relative":          {dir("/"), dir("a")},
		"empty path":        {dir(""), dir("/")},
		"dot-dot":           {dir("/"), dir("/../etc")},
		"unclean":           {dir("/"), dir("/a/../b")},
		"trailing slash":    {dir("/"), dir("/a/")},
		"NUL":               {dir("/"), dir("/a\x00b")},
		"negative offset":   {dir("/"), file("/f", -1, 1)},
		"negative length":   {dir("/"), file("/f", 0, -1)},
		"overflowing range": {dir("/"), file("/f", 10, math.MaxInt64-5)},
	} {
		if _, err := Decode(encodeNodes(t, nodes, nil)); !errors.Is(err, ErrCorruptArchive) {
			t.Errorf("%s: err = %v, want ErrCorruptArchive", name, err)
		}
	}
}

// TestDecodeRejectsBadExtension: chunk sizes a reader would allocate, and
// checksum lists that do not cover the stream, are ErrCorruptArchive.
func TestDecodeRejectsBadExtension(t *testing.T) {
	root := []*common.ClipNode{{Path: "/", NodeType: common.DirNode}}
	ok := LayerExtension{Digest: "sha256:x", USize: 70000, ChunkSize: 65536, ChunkCRCs: []uint32{1, 2}}
	if _, err := Decode(encodeNodes(t, root, &Extension{Layers: []LayerExtension{ok}})); err != nil {
		t.Fatalf("good extension: %v", err)
	}
	for name, edit := range map[string]func(*LayerExtension){
		"huge chunk size":     func(l *LayerExtension) { l.ChunkSize = 1 << 40 },
		"negative chunk size": func(l *LayerExtension) { l.ChunkSize = -1; l.ChunkCRCs = nil },
		"checksums, no size":  func(l *LayerExtension) { l.ChunkSize = 0 },
		"too few checksums":   func(l *LayerExtension) { l.ChunkCRCs = l.ChunkCRCs[:1] },
		"too many checksums":  func(l *LayerExtension) { l.ChunkCRCs = append(l.ChunkCRCs, 3) },
		"negative size":       func(l *LayerExtension) { l.Size = -1 },
		"negative usize":      func(l *LayerExtension) { l.USize = -1; l.ChunkCRCs = nil },
	} {
		l := ok
		l.ChunkCRCs = append([]uint32(nil), ok.ChunkCRCs...)
		edit(&l)
		if _, err := Decode(encodeNodes(t, root, &Extension{Layers: []LayerExtension{l}})); !errors.Is(err, ErrCorruptArchive) {
			t.Errorf("%s: err = %v, want ErrCorruptArchive", name, err)
		}
	}
}
