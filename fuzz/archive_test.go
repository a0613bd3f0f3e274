package fuzz

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/tarindex"
)

func FuzzDecode(f *testing.F) {
	for _, span := range []int64{-1, 16 << 10} {
		out := filepath.Join(f.TempDir(), "u.clip")
		if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
			LayoutPath: filepath.Join(repoTestdata, "umoci-insert"), OutputPath: out, SpanBytes: span,
			StorageImageRef: "example.com/umoci:1",
		}); err != nil {
			f.Fatal(err)
		}
		f.Add(readFile(f, out))
	}
	ra := newRandomAccess(f)
	f.Add(ra.encoded)
	var buf bytes.Buffer
	if err := archive.Encode(&buf, []*common.ClipNode{{Path: "/", NodeType: common.DirNode}}, &common.OCIStorageInfo{}, &archive.Extension{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:common.ClipHeaderLength])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		var a *archive.Archive
		var err error
		allocBudget(t, 64<<20+1024*uint64(len(b)), func() { a, err = archive.Decode(b) })
		if err != nil {
			if !errors.Is(err, archive.ErrNotClip) && !errors.Is(err, archive.ErrCorruptArchive) {
				t.Fatalf("error wraps neither ErrNotClip nor ErrCorruptArchive: %v", err)
			}
			return
		}
		checkArchiveNodes(t, a.Nodes)
		if a.StorageType != archive.StorageTypeOCI {
			return // Encode writes oci storage info only
		}
		var b2 bytes.Buffer
		if err := archive.Encode(&b2, a.Nodes, &a.Storage, a.Extension); err != nil {
			t.Fatalf("Encode of a decoded archive: %v", err)
		}
		a2, err := archive.Decode(b2.Bytes())
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))): %v", err)
		}
		// time.Time's UnmarshalBinary accepts non-canonical encodings
		// (nanoseconds past 1e9, ...) that decode to an equal time with
		// other internal fields: compare the config's time with Equal.
		if m, m2 := a.Storage.ImageMetadata, a2.Storage.ImageMetadata; m != nil && m2 != nil && m.Created.Equal(m2.Created) {
			m.Created = m2.Created
		}
		if !reflect.DeepEqual(a.Nodes, a2.Nodes) || !reflect.DeepEqual(a.Storage, a2.Storage) || !reflect.DeepEqual(a.Extension, a2.Extension) {
			t.Fatalf("archive changed through Encode and Decode")
		}
		var b3 bytes.Buffer
		if err := archive.Encode(&b3, a2.Nodes, &a2.Storage, a2.Extension); err != nil || !bytes.Equal(b2.Bytes(), b3.Bytes()) {
			t.Fatalf("Encode is not deterministic (%v)", err)
		}
	})
}

// checkArchiveNodes checks what a decoded archive promises its readers:
// non-nil nodes sorted by path, unique, with clean absolute paths and data
// ranges that do not overflow.
func checkArchiveNodes(t *testing.T, nodes []*common.ClipNode) {
	t.Helper()
	for i, n := range nodes {
		if n == nil {
			t.Fatalf("node %d is nil", i)
		}
		checkCleanAbs(t, fmt.Sprintf("node %d path", i), n.Path)
		if i > 0 && nodes[i-1].Path >= n.Path {
			t.Fatalf("nodes %d and %d out of order: %q, %q", i-1, i, nodes[i-1].Path, n.Path)
		}
		if r := n.Remote; r != nil && (r.UOffset < 0 || r.ULength < 0 || r.UOffset+r.ULength < r.UOffset) {
			t.Fatalf("node %s: data at %d+%d", n.Path, r.UOffset, r.ULength)
		}
	}
}

// randomAccess is an archive of a small image with one layer per
// compression (with its chunk checksums), and the layers' blobs and
// uncompressed streams.
type randomAccess struct {
	encoded []byte
	blobs   map[string][]byte // by digest
	streams map[string][]byte // uncompressed, by layer digest
}

func (r *randomAccess) OpenLayer(d string) (io.ReaderAt, int64, error) {
	b, ok := r.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("no blob %s", d)
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

func newRandomAccess(tb testing.TB) *randomAccess {
	tb.Helper()
	rng := rand.New(rand.NewSource(6))
	text := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefgh ijklmnop\n"[rng.Intn(18)]
			if rng.Intn(50) == 0 {
				b[i] = byte(rng.Intn(256))
			}
		}
		return b
	}
	ra := &randomAccess{blobs: map[string][]byte{}, streams: map[string][]byte{}}
	var layers []archive.LayerEntries
	var descs []v1.Descriptor
	var results []*tarindex.Result
	for i, c := range []testimage.Compression{testimage.GzipFlush, testimage.GzipMulti, testimage.ZstdMulti, testimage.None} {
		es := []testimage.Entry{{Name: fmt.Sprintf("l%d/", i), Type: tar.TypeDir}}
		for j := 0; j < 4; j++ {
			es = append(es, testimage.Entry{Name: fmt.Sprintf("l%d/f%d", i, j), Body: text(5000 + rng.Intn(40000))})
		}
		es = append(es, testimage.Entry{Name: fmt.Sprintf("l%d/empty", i)}, testimage.Entry{Name: fmt.Sprintf("l%d/link", i), Type: tar.TypeLink, Linkname: fmt.Sprintf("l%d/f1", i)})
		u, err := testimage.TarBytes(es)
		if err != nil {
			tb.Fatal(err)
		}
		blob, err := testimage.CompressSplit(u, c, []int64{20000, 50000})
		if err != nil {
			tb.Fatal(err)
		}
		res, err := tarindex.Index(context.Background(), bytes.NewReader(blob), tarindex.Options{SpanBytes: 8 << 10})
		if err != nil {
			tb.Fatal(err)
		}
		d := digest.FromBytes(blob)
		ra.blobs[d.String()], ra.streams[d.String()] = blob, u
		layers = append(layers, archive.LayerEntries{Digest: d.String(), Entries: res.Entries})
		descs = append(descs, v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: d, Size: int64(len(blob))})
		results = append(results, res)
	}
	nodes, _, err := archive.Merge(layers, time.Unix(1700000000, 0))
	if err != nil {
		tb.Fatal(err)
	}
	info, err := archive.BuildStorageInfo(archive.StorageRef{}, archive.ImageInfo{Name: "ra", Layers: descs}, results)
	if err != nil {
		tb.Fatal(err)
	}
	ext := archive.BuildExtension(descs, results)
	for _, le := range ext.Layers {
		if le.ChunkSize <= 0 || int64(len(le.ChunkCRCs)) != (le.USize+le.ChunkSize-1)/le.ChunkSize {
			tb.Fatalf("layer %s: %d chunk checksums of %d bytes for %d bytes", le.Digest, len(le.ChunkCRCs), le.ChunkSize, le.USize)
		}
	}
	var buf bytes.Buffer
	if err := archive.Encode(&buf, nodes, info, ext); err != nil {
		tb.Fatal(err)
	}
	ra.encoded = buf.Bytes()
	return ra
}

// FileReader mutation flags.
const (
	frNoCRCs     = 1 << iota // drop the chunk checksums (as archives written today have none)
	frNoExt                  // drop the extension section
	frPoint                  // mutate a resume point or zstd frame
	frWindowCut              // truncate the resume point's window
	frWindowFlip             // flip a byte of the window
	frNode                   // move the node's data range
)

func FuzzFileReader(f *testing.F) {
	ra := newRandomAccess(f)
	f.Add(uint8(0), uint8(0), int16(0), uint8(0), int16(0), int16(0), uint16(0), uint8(0), int32(0), int32(0), uint32(0), uint16(100), uint8(0))
	f.Add(uint8(0), uint8(1), int16(0), uint8(0), int16(0), int16(0), uint16(300), uint8(1), int32(0), int32(0), uint32(9000), uint16(5000), uint8(frPoint|frWindowFlip))
	f.Add(uint8(1), uint8(2), int16(1), uint8(3), int16(0), int16(0), uint16(0), uint8(5), int32(0), int32(0), uint32(20000), uint16(30000), uint8(frPoint))
	f.Add(uint8(1), uint8(0), int16(0), uint8(0), int16(3), int16(0), uint16(0), uint8(6), int32(0), int32(0), uint32(100), uint16(60000), uint8(frPoint))
	f.Add(uint8(2), uint8(1), int16(-5), uint8(0), int16(0), int16(0), uint16(0), uint8(9), int32(0), int32(0), uint32(0), uint16(60000), uint8(frPoint))
	f.Add(uint8(3), uint8(0), int16(0), uint8(0), int16(0), int16(0), uint16(0), uint8(13), int32(512), int32(100), uint32(0), uint16(6000), uint8(frNode))
	f.Add(uint8(0), uint8(0), int16(0), uint8(0), int16(0), int16(0), uint16(0), uint8(2), int32(1<<20), int32(0), uint32(0), uint16(600), uint8(frNode))
	f.Add(uint8(0), uint8(0), int16(0), uint8(0), int16(0), int16(0), uint16(20000), uint8(3), int32(0), int32(0), uint32(0), uint16(60000), uint8(frPoint|frWindowCut|frNoCRCs))
	f.Add(uint8(0), uint8(0), int16(0), uint8(0), int16(0), int16(0), uint16(0), uint8(3), int32(0), int32(0), uint32(0), uint16(60000), uint8(frNoExt))
	f.Fuzz(func(t *testing.T, layerSel, point uint8, dCOff int16, bit uint8, dUOff, dMember int16, winOp uint16,
		nodeSel uint8, dNodeOff, dNodeLen int32, off uint32, n uint16, flags uint8) {
		a, err := archive.Decode(ra.encoded)
		if err != nil {
			t.Fatal(err)
		}
		le := &a.Extension.Layers[int(layerSel)%len(a.Extension.Layers)]
		if flags&frPoint != 0 {
			if len(le.Points) > 0 {
				p := &le.Points[int(point)%len(le.Points)]
				p.COff += int64(dCOff)
				p.BitOffset = bit % 10
				p.UOff += int64(dUOff)
				p.MemberStart += int64(dMember)
				if flags&frWindowCut != 0 && len(p.ZWindow) > 0 {
					p.ZWindow = p.ZWindow[int(winOp)%len(p.ZWindow):]
				}
				if flags&frWindowFlip != 0 && len(p.ZWindow) > 0 {
					p.ZWindow[int(winOp)%len(p.ZWindow)] ^= 1 << (bit % 8)
				}
			}
			if z := a.Storage.ZstdIdxByLayer[le.Digest]; z != nil && len(z.Frames) > 0 {
				fr := &z.Frames[int(point)%len(z.Frames)]
				fr.COff += int64(dCOff)
				fr.CLen += int64(dMember)
				fr.UOff += int64(dUOff)
				fr.ULen += int64(winOp % 64)
			}
		}
		if flags&frNoCRCs != 0 {
			for i := range a.Extension.Layers {
				a.Extension.Layers[i].ChunkCRCs = nil
			}
		}
		if flags&frNoExt != 0 {
			a.Extension = nil
		}
		var files []*common.ClipNode
		for _, n := range a.Nodes {
			if n.NodeType == common.FileNode {
				files = append(files, n)
			}
		}
		node := files[int(nodeSel)%len(files)]
		if flags&frNode != 0 {
			node.Remote.UOffset += int64(dNodeOff)
			node.Remote.ULength += int64(dNodeLen)
		}
		// The reader gets the archive as a file would hold it.
		var buf bytes.Buffer
		if err := archive.Encode(&buf, a.Nodes, &a.Storage, a.Extension); err != nil {
			t.Fatal(err)
		}
		if a, err = archive.Decode(buf.Bytes()); err != nil {
			return // rejected by Decode's checks
		}
		node = a.Nodes[sort.Search(len(a.Nodes), func(i int) bool { return a.Nodes[i].Path >= node.Path })]
		fr := ociclip.NewReader(a, ra)
		got := make([]byte, n)
		rem := node.Remote
		o := int64(off) % (rem.ULength + 4096)
		var k int
		allocBudget(t, 16<<20+4*uint64(n), func() {
			var sr *io.SectionReader
			if sr, err = fr.OpenNode(node); err == nil {
				k, err = sr.ReadAt(got, o)
			}
		})
		if len(got) == 0 && err == io.EOF {
			err = nil // io.ReaderAt: an empty read may report io.EOF past the end (io.SectionReader does)
		}

		u := ra.streams[rem.LayerDigest]
		want := int64(len(got))
		if o >= rem.ULength {
			want = 0
		} else if rem.ULength-o < want {
			want = rem.ULength - o
		}
		inside := rem.UOffset+o+want <= int64(len(u))
		switch {
		case err == nil || err == io.EOF:
			if int64(k) != want || (err == io.EOF) != (want < int64(len(got))) {
				t.Fatalf("ReadAt(%s, %d bytes, %d) = %d, %v; want %d bytes", node.Path, len(got), o, k, err, want)
			}
			if flags&(frNoCRCs|frNoExt) != 0 && flags&(frPoint|frNode) != 0 {
				return // nothing to check the bytes against: wrong bytes possible (see the package doc)
			}
			if want > 0 && (!inside || !bytes.Equal(got[:k], u[rem.UOffset+o:rem.UOffset+o+want])) {
				t.Fatalf("ReadAt(%s, %d bytes, %d) returned bytes that are not the layer's (data %d+%d, stream %d bytes)", node.Path, len(got), o, rem.UOffset, rem.ULength, len(u))
			}
		case errors.Is(err, ociclip.ErrVerify), errors.Is(err, tarindex.ErrCorrupt):
			if flags&(frPoint|frNode|frWindowCut|frWindowFlip) == 0 {
				t.Fatalf("ReadAt(%s, %d bytes, %d) of an intact archive: %v", node.Path, len(got), o, err)
			}
		default:
			t.Fatalf("ReadAt(%s, %d bytes, %d): error wraps neither ErrVerify nor ErrCorrupt: %v", node.Path, len(got), o, err)
		}
	})
}
