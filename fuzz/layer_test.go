package fuzz

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/tarindex"
)

// layerWrap is how FuzzLayer turns the fuzzed bytes into a layer blob.
type layerWrap struct {
	name string
	// comp compresses the fuzzed bytes (the uncompressed tar stream) with
	// testimage; "" means the bytes are the blob itself ("raw").
	comp testimage.Compression
	mt   string // media type given to Index ("" detects)
}

var layerWraps = []layerWrap{
	{"gzip", testimage.Gzip, layerz.MediaTypeOCILayerGzip},
	{"gzip-stored", testimage.GzipStored, layerz.MediaTypeOCILayerGzip},
	{"gzip-multi", testimage.GzipMulti, layerz.MediaTypeDockerLayerGzip},
	{"gzip-flush", testimage.GzipFlush, layerz.MediaTypeOCILayerGzip},
	{"gzip-stdlib", testimage.GzipStdlib, layerz.MediaTypeOCILayerGzip},
	{"zstd", testimage.Zstd, layerz.MediaTypeOCILayerZstd},
	{"zstd-multi", testimage.ZstdMulti, layerz.MediaTypeOCILayerZstd},
	{"zstd-skippable", testimage.ZstdSkippable, layerz.MediaTypeOCINondistributableZstd},
	{"plain", testimage.None, layerz.MediaTypeOCILayer},
	{"raw-detect", "", ""},
	{"raw-tar", "", layerz.MediaTypeOCILayer},
	{"raw-gzip", "", layerz.MediaTypeOCILayerGzip},
	{"raw-zstd", "", layerz.MediaTypeOCILayerZstd},
	{"raw-docker-tar", "", layerz.MediaTypeDockerLayer},
	{"raw-unknown", "", "application/octet-stream"},
}

func wrapIndex(name string) uint8 {
	for i, w := range layerWraps {
		if w.name == name {
			return uint8(i)
		}
	}
	panic(name)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Limits of FuzzLayer's passes.
var layerLimits = tarindex.Limits{MaxEntries: 200, MaxPathLen: 300, MaxUncompressedBytes: 1 << 20}

// layerSeedTars returns uncompressed tar streams for the seed corpus: the
// layers of the repository's testdata (the small ones) and hand-made edge
// cases.
func layerSeedTars(tb testing.TB) [][]byte {
	tb.Helper()
	var tars [][]byte
	for _, b := range smallBlobs(tb, 16<<10)["busybox-plain"] {
		if len(b) > 2048 { // the layers (the JSON documents are smaller)
			tars = append(tars, b)
		}
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 2500)
	edge := [][]testimage.Entry{
		{
			{Name: "./", Type: tar.TypeDir},
			{Name: "etc/", Type: tar.TypeDir},
			{Name: "etc/a", Body: []byte("a")},
			{Name: "etc/b", Type: tar.TypeLink, Linkname: "etc/a"},
			{Name: "etc/c", Type: tar.TypeSymlink, Linkname: "../etc/a"},
			{Name: "etc/.wh.d"},
			{Name: "etc/.wh..wh..opq"},
			{Name: "/abs/file", Body: body},
			{Name: "x/../y", Body: []byte("y")},
			{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
			{Name: "dev/sda", Type: tar.TypeBlock, Devmajor: 8},
			{Name: "run/fifo", Type: tar.TypeFifo},
			{Name: "nul", TypeflagNUL: true, Body: []byte("v7")},
		},
		{
			{Name: "g", Type: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "global"}},
			{Name: string(bytes.Repeat([]byte("long/"), 40)) + "name", Body: []byte("pax long name"), ModTime: testimage.NanoTime},
			{Name: "gnu-" + string(bytes.Repeat([]byte("n"), 150)), Body: []byte("gnu long name"), Format: tar.FormatGNU},
			{Name: "xattr", Body: []byte("x"), PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
			{Name: "zeros", Body: make([]byte, 40<<10)},
		},
		{
			{Name: "sparse", Type: tar.TypeGNUSparse, Sparse: []testimage.SparseFragment{{Offset: 0, Length: 512}, {Offset: 4096, Length: 10}}, SparseSize: 8192, Body: make([]byte, 522)},
		},
		{
			{Name: "../escape", Body: []byte("no")},
		},
		{
			// Plain USTAR variants (tarindex parses these itself): the
			// prefix field, maximal octal fields, a header archive/tar
			// writes with GNU base-256 numbers, a hand-made header with
			// space-padded fields, then more ordinary entries.
			{Name: strings.Repeat("p", 99) + "/" + strings.Repeat("q", 40) + "/file", Body: []byte("prefix"), Format: tar.FormatUSTAR},
			{Name: "maxoctal", Body: []byte("m"), Uid: 2097151, Gid: 2097151, Mode: 0o7777, Format: tar.FormatUSTAR},
			{Name: "base256", Body: []byte("b"), Uid: 1 << 30, Format: tar.FormatGNU},
			{Raw: spacedHeader("spaced", 3, "abc")},
			{Name: "dir/", Type: tar.TypeDir, Format: tar.FormatUSTAR},
			{Name: "dir/link", Type: tar.TypeLink, Linkname: "spaced", Format: tar.FormatUSTAR},
			{Name: "dir/sym", Type: tar.TypeSymlink, Linkname: "../maxoctal", Format: tar.FormatUSTAR},
		},
	}
	first := len(tars) // the first hand-made stream
	for _, es := range edge {
		b, err := testimage.TarBytes(es)
		if err != nil {
			tb.Fatal(err)
		}
		tars = append(tars, b)
	}
	// Without the end-of-archive blocks (umoci insert), and cut inside a
	// header and inside data.
	t0 := tars[first]
	tars = append(tars, t0[:len(t0)-1024], t0[:700], t0[:2000])
	return tars
}

// spacedHeader is a USTAR entry written by hand with space-padded numeric
// fields (as some old tars have) and body as data.
func spacedHeader(name string, mode int, body string) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], fmt.Sprintf("%6o \x00", mode))
	copy(h[108:], "     0 \x00")
	copy(h[116:], "     0 \x00")
	copy(h[124:], fmt.Sprintf("%11o ", len(body)))
	copy(h[136:], fmt.Sprintf("%11o ", 1700000000))
	h[156] = tar.TypeReg
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%6o\x00 ", sum))
	data := make([]byte, (len(body)+511)/512*512)
	copy(data, body)
	return append(h, data...)
}

func FuzzLayer(f *testing.F) {
	for _, u := range layerSeedTars(f) {
		for _, w := range []string{"gzip", "gzip-multi", "gzip-flush", "zstd-skippable", "plain"} {
			f.Add(wrapIndex(w), u)
		}
	}
	for l, blobs := range smallBlobs(f, 16<<10) {
		w := map[string]string{"busybox": "raw-gzip", "umoci-insert": "raw-gzip", "busybox-zstd": "raw-zstd", "busybox-plain": "raw-tar"}[l]
		for _, b := range blobs {
			if len(b) > 256 && b[0] != '{' {
				f.Add(wrapIndex(w), b)
				f.Add(wrapIndex("raw-detect"), b)
			}
		}
	}
	f.Add(wrapIndex("raw-unknown"), []byte{})
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		if len(data) > 256<<10 {
			return
		}
		w := layerWraps[int(sel)%len(layerWraps)]
		blob, u := data, data
		if w.comp != "" {
			var err error
			if blob, err = testimage.Compress(data, w.comp); err != nil {
				t.Fatal(err)
			}
		}
		var res *tarindex.Result
		var err error
		var progress []tarindex.Progress
		allocBudget(t, 192<<20+64*uint64(len(blob)), func() {
			res, err = tarindex.Index(context.Background(), bytes.NewReader(blob), tarindex.Options{
				MediaType: w.mt, CheckpointMiB: 1, SpanBytes: 16 << 10, Limits: layerLimits,
				Progress: func(p tarindex.Progress) { progress = append(progress, p) },
			})
		})
		if err != nil {
			if !wrapsOneOf(err, tarSentinels) {
				t.Fatalf("%s: error wraps no tarindex sentinel: %v", w.name, err)
			}
			if w.comp != "" && w.comp != testimage.None && errors.Is(err, tarindex.ErrCompressionMismatch) {
				t.Fatalf("%s: %v", w.name, err)
			}
			if w.mt == "application/octet-stream" && !errors.Is(err, tarindex.ErrUnknownMediaType) {
				t.Fatalf("%s: %v", w.name, err)
			}
			return
		}
		if w.mt == "application/octet-stream" {
			t.Fatal("unknown media type accepted")
		}
		if w.comp == "" {
			// Raw blob: decompress it independently (Go's compress/gzip,
			// klauspost zstd) to learn the stream.
			if u, err = independentDecompress(blob, res.Compression); err != nil {
				t.Fatalf("%s: Index accepted a %s blob that an independent decoder rejects: %v", w.name, res.Compression, err)
			}
		}
		checkLayerResult(t, w.name, blob, u, res)
		if n := len(progress); n == 0 || progress[n-1] != (tarindex.Progress{CompressedBytes: res.CompressedSize, UncompressedBytes: res.UncompressedSize, Entries: len(res.Entries)}) {
			t.Fatalf("last progress %+v, result %d/%d bytes %d entries", progress, res.CompressedSize, res.UncompressedSize, len(res.Entries))
		}
		for i := 1; i < len(progress); i++ {
			if p, q := progress[i-1], progress[i]; q.CompressedBytes < p.CompressedBytes || q.UncompressedBytes < p.UncompressedBytes || q.Entries < p.Entries {
				t.Fatalf("progress goes back: %+v then %+v", p, q)
			}
		}
	})
}

// independentDecompress decodes a blob with other code than tarindex's.
func independentDecompress(blob []byte, c layerz.Compression) ([]byte, error) {
	switch c {
	case layerz.Gzip:
		zr, err := stdgzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case layerz.Zstd:
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<28))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		return dec.DecodeAll(blob, nil)
	}
	return blob, nil
}

// checkLayerResult checks a successful pass over blob, whose uncompressed
// stream is u.
func checkLayerResult(t *testing.T, name string, blob, u []byte, res *tarindex.Result) {
	t.Helper()
	if res.CompressedSize != int64(len(blob)) || res.UncompressedSize != int64(len(u)) {
		t.Fatalf("%s: sizes %d/%d, want %d/%d", name, res.CompressedSize, res.UncompressedSize, len(blob), len(u))
	}
	if want := digest.FromBytes(u); res.DiffID != want {
		t.Fatalf("%s: DiffID %s, sha256 of the stream %s", name, res.DiffID, want)
	}
	if len(res.Entries) > layerLimits.MaxEntries || res.UncompressedSize > layerLimits.MaxUncompressedBytes {
		t.Fatalf("%s: %d entries, %d bytes: over the limits %+v", name, len(res.Entries), res.UncompressedSize, layerLimits)
	}
	lastData := int64(-1)
	for i, e := range res.Entries {
		checkCleanAbs(t, fmt.Sprintf("%s: entry %d path", name, i), e.Path)
		if len(e.Path) > layerLimits.MaxPathLen+1 {
			t.Fatalf("%s: entry %d path of %d bytes", name, i, len(e.Path))
		}
		switch e.Kind {
		case tarindex.KindFile:
			if e.Offset <= lastData || e.Size < 0 || e.Offset+e.Size > res.UncompressedSize || e.Offset%512 != 0 {
				t.Fatalf("%s: entry %d %s: data at %d+%d (previous at %d) in a %d-byte stream", name, i, e.Path, e.Offset, e.Size, lastData, res.UncompressedSize)
			}
			lastData = e.Offset
		case tarindex.KindDir, tarindex.KindHardlink, tarindex.KindSymlink, tarindex.KindChar, tarindex.KindBlock, tarindex.KindFIFO:
			if e.Size != 0 || e.Offset != 0 {
				t.Fatalf("%s: entry %d %s (%s) has data %d+%d", name, i, e.Path, e.Kind, e.Offset, e.Size)
			}
		default:
			t.Fatalf("%s: entry %d: kind %d", name, i, e.Kind)
		}
		if e.Mode&^0o7777 != 0 {
			t.Fatalf("%s: entry %d mode %o", name, i, e.Mode)
		}
	}
	replayTar(t, name, u, res.Entries)
	if res.ChunkSize != layerz.ChunkSize || int64(len(res.ChunkCRCs)) != (res.UncompressedSize+res.ChunkSize-1)/res.ChunkSize {
		t.Fatalf("%s: %d chunk checksums of %d bytes for %d bytes", name, len(res.ChunkCRCs), res.ChunkSize, res.UncompressedSize)
	}
	for i, c := range res.ChunkCRCs {
		if want := crc32.Checksum(u[int64(i)*res.ChunkSize:min(int64(i+1)*res.ChunkSize, res.UncompressedSize)], castagnoli); c != want {
			t.Fatalf("%s: chunk %d: crc32c %08x, the stream's is %08x", name, i, c, want)
		}
	}

	switch res.Compression {
	case layerz.Gzip:
		if len(res.ZstdFrames) != 0 {
			t.Fatalf("%s: gzip layer with zstd frames", name)
		}
		for i, c := range res.GzipCheckpoints {
			if c.UOff <= 0 || c.UOff > res.UncompressedSize || c.COff <= 0 || c.COff > res.CompressedSize ||
				i > 0 && (c.UOff <= res.GzipCheckpoints[i-1].UOff || c.COff <= res.GzipCheckpoints[i-1].COff) {
				t.Fatalf("%s: checkpoint %d %+v (all: %+v)", name, i, c, res.GzipCheckpoints)
			}
		}
		for i, rp := range res.ResumePoints {
			window, err := rp.Window()
			if err != nil {
				t.Fatalf("%s: resume point %d: %v", name, i, err)
			}
			if rp.UOff <= 0 || rp.UOff > res.UncompressedSize || rp.COff < 0 || rp.COff >= res.CompressedSize || rp.BitOffset > 7 ||
				rp.MemberStart < 0 || rp.MemberStart > rp.COff || len(window) > 32<<10 ||
				i > 0 && (rp.UOff <= res.ResumePoints[i-1].UOff || rp.COff < res.ResumePoints[i-1].COff) {
				t.Fatalf("%s: resume point %d {COff %d Bit %d UOff %d Member %d Window %d}", name, i, rp.COff, rp.BitOffset, rp.UOff, rp.MemberStart, len(window))
			}
			if want := u[max(0, rp.UOff-int64(len(window))):rp.UOff]; len(window) != min(len(u[:rp.UOff]), 32<<10) || !bytes.Equal(window, want) {
				t.Fatalf("%s: resume point %d: window of %d bytes is not the %d bytes before UOff %d", name, i, len(window), len(want), rp.UOff)
			}
			rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), rp)
			if err != nil {
				t.Fatalf("%s: OpenAt resume point %d: %v", name, i, err)
			}
			// The last point is read to the end of the blob, the others
			// for 64 KiB.
			last := i == len(res.ResumePoints)-1
			want := u[rp.UOff:]
			if !last && len(want) > 64<<10 {
				want = want[:64<<10]
			}
			got := make([]byte, len(want))
			_, err = io.ReadFull(rc, got)
			if err == nil && last {
				var extra []byte
				if extra, err = io.ReadAll(rc); err == nil && len(extra) > 0 {
					err = fmt.Errorf("%d bytes after the end of the stream", len(extra))
				}
			}
			rc.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: resuming at point %d (UOff %d): %v, or not the %d bytes of the stream", name, i, rp.UOff, err, len(want))
			}
		}
	case layerz.Zstd:
		if len(res.GzipCheckpoints)+len(res.ResumePoints) != 0 {
			t.Fatalf("%s: zstd layer with gzip checkpoints", name)
		}
		var uoff, coff int64
		for i, fr := range res.ZstdFrames {
			if fr.UOff != uoff || fr.COff < coff || fr.CLen <= 0 || fr.ULen < 0 || fr.COff+fr.CLen > res.CompressedSize {
				t.Fatalf("%s: zstd frame %d %+v after uoff %d coff %d", name, i, fr, uoff, coff)
			}
			rc, err := layerz.OpenFrame(bytes.NewReader(blob), fr)
			if err != nil {
				t.Fatalf("%s: OpenFrame %d: %v", name, i, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, u[fr.UOff:fr.UOff+fr.ULen]) {
				t.Fatalf("%s: frame %d decodes to %d bytes (%v), want %d", name, i, len(got), err, fr.ULen)
			}
			uoff, coff = fr.UOff+fr.ULen, fr.COff+fr.CLen
		}
		if uoff != res.UncompressedSize || len(res.ZstdFrames) == 0 {
			t.Fatalf("%s: zstd frames cover %d of %d bytes", name, uoff, res.UncompressedSize)
		}
	default:
		if len(res.GzipCheckpoints)+len(res.ResumePoints)+len(res.ZstdFrames) != 0 {
			t.Fatalf("%s: uncompressed layer with checkpoints or frames", name)
		}
	}
}

// replayTar walks u with archive/tar alone and checks that the entries
// tarindex kept are the headers it finds, with file data at the recorded
// offsets.
func replayTar(t *testing.T, name string, u []byte, entries []tarindex.Entry) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(u))
	i := 0
	for {
		h, err := tr.Next()
		if err == tar.ErrInsecurePath && h != nil {
			err = nil
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: Index succeeded, archive/tar fails after %d entries: %v", name, i, err)
		}
		kind := tarindex.KindFile
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		case tar.TypeDir:
			kind = tarindex.KindDir
		case tar.TypeSymlink:
			kind = tarindex.KindSymlink
		case tar.TypeLink:
			kind = tarindex.KindHardlink
		case tar.TypeChar:
			kind = tarindex.KindChar
		case tar.TypeBlock:
			kind = tarindex.KindBlock
		case tar.TypeFifo:
			kind = tarindex.KindFIFO
		default:
			continue
		}
		if i >= len(entries) {
			t.Fatalf("%s: archive/tar finds more entries than the %d of the index (%q)", name, len(entries), h.Name)
		}
		e := entries[i]
		i++
		if want := path.Clean("/" + h.Name); e.Path != want || e.Kind != kind || e.Mode != uint32(h.Mode&0o7777) || int(e.Uid) != h.Uid || int(e.Gid) != h.Gid {
			t.Fatalf("%s: entry %d is %q %s %o %d:%d, archive/tar says %q (%q) %s %o %d:%d", name, i-1, e.Path, e.Kind, e.Mode, e.Uid, e.Gid, want, h.Name, kind, h.Mode, h.Uid, h.Gid)
		}
		switch kind {
		case tarindex.KindFile:
			data, err := io.ReadAll(tr)
			if err != nil || int64(len(data)) != e.Size || !bytes.Equal(data, u[e.Offset:e.Offset+e.Size]) {
				t.Fatalf("%s: %s: archive/tar reads %d bytes (%v), index says %d at %d, and they differ", name, e.Path, len(data), err, e.Size, e.Offset)
			}
		case tarindex.KindSymlink, tarindex.KindHardlink:
			// Both verbatim: the merge resolves a hard link's target.
			if e.Linkname != h.Linkname {
				t.Fatalf("%s: %s %s -> %q, archive/tar says %q", name, kind, e.Path, e.Linkname, h.Linkname)
			}
		}
	}
	if i != len(entries) {
		t.Fatalf("%s: the index has %d entries, archive/tar %d", name, len(entries), i)
	}
}
