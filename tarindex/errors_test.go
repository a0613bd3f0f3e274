package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ociclip/ociclip/layerz"
)

// rawHeader returns a USTAR header block (with a valid checksum).
func rawHeader(name string, typ byte, size int64, linkname string) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = typ
	copy(b[157:257], linkname)
	copy(b[257:], "ustar\x0000")
	setChecksum(b)
	return b
}

func setChecksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:512] {
		sum += int64(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
}

func pad512(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// paxEntry returns an 'x' extended header with the records (in order).
func paxEntry(kv ...string) []byte {
	var data []byte
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec)
		for {
			s := fmt.Sprint(n+len(fmt.Sprint(n))) + rec
			if len(s) == n+len(fmt.Sprint(n)) {
				data = append(data, s...)
				break
			}
			n++
		}
	}
	return append(rawHeader("PaxHeaders/x", 'x', int64(len(data)), ""), pad512(data)...)
}

func endBlocks() []byte { return make([]byte, 1024) }

func TestErrors(t *testing.T) {
	t.Parallel()
	good := writeTar(t, fileSet(false, false), tar.FormatUSTAR, nil)
	gz := gzipGo(t, good)
	zs := zstdSingle(t, good)

	type tc struct {
		name string
		blob []byte
		opts Options
		want error
		msg  string // a substring the message must hold
	}
	cases := []tc{
		{"unknown media type", gz, Options{MediaType: "application/vnd.oci.image.config.v1+json"}, ErrUnknownMediaType, "config"},
		{"gzip bytes, zstd type", gz, Options{MediaType: layerz.MediaTypeOCILayerZstd}, ErrCompressionMismatch, "says zstd, the blob's magic bytes say gzip"},
		{"zstd bytes, gzip type", zs, Options{MediaType: layerz.MediaTypeDockerLayerGzip}, ErrCompressionMismatch, "says gzip, the blob's magic bytes say zstd"},
		{"tar bytes, gzip type", good, Options{MediaType: layerz.MediaTypeOCILayerGzip}, ErrCompressionMismatch, "magic bytes say none"},
		{"gzip bytes, tar type", gz, Options{MediaType: layerz.MediaTypeDockerLayer}, ErrCompressionMismatch, "says none"},
		{"empty gzip", nil, Options{MediaType: layerz.MediaTypeOCILayerGzip}, ErrCorrupt, "too short"},
		{"one byte gzip", []byte{0x1f}, Options{MediaType: layerz.MediaTypeOCILayerGzip}, ErrCorrupt, "too short"},
		{"gzip truncated in the trailer", gz[:len(gz)-3], Options{}, ErrCorrupt, "trailer"},
		{"gzip truncated in deflate", gz[:len(gz)/2], Options{}, ErrCorrupt, "truncated"},
		{"gzip truncated in the header", gz[:6], Options{MediaType: layerz.MediaTypeOCILayerGzip}, ErrCorrupt, "header"},
		{"gzip bad CRC", flip(gz, len(gz)-8), Options{}, ErrCorrupt, "CRC32"},
		{"gzip bad ISIZE", flip(gz, len(gz)-2), Options{}, ErrCorrupt, "ISIZE"},
		{"gzip trailing garbage", append(bytes.Clone(gz), "garbage"...), Options{}, ErrCorrupt, "trailing garbage"},
		{"gzip trailing zeros", append(bytes.Clone(gz), 0, 0, 0, 0), Options{}, ErrCorrupt, "trailing garbage"},
		{"gzip trailing magic byte", append(bytes.Clone(gz), 0x1f), Options{}, ErrCorrupt, "trailing garbage"},
		{"gzip reserved flag", flipBits(gz, 3, 0x80), Options{}, ErrCorrupt, "reserved"},
		{"gzip bad header CRC16", withFHCRC(gz, true), Options{}, ErrCorrupt, "CRC16"},
		{"gzip bad deflate", flipMiddle(gz), Options{}, ErrCorrupt, ""},
		{"zstd truncated", zs[:len(zs)-7], Options{}, ErrCorrupt, ""},
		{"zstd truncated in the header", zs[:5], Options{MediaType: layerz.MediaTypeOCILayerZstd}, ErrCorrupt, ""},
		{"zstd corrupt", flipMiddle(zs), Options{}, ErrCorrupt, ""},
		{"zstd trailing garbage", append(bytes.Clone(zs), "garbage"...), Options{}, ErrCorrupt, "trailing garbage"},
		{"zstd only a skippable frame", skippable(4), Options{}, ErrCorrupt, "no data frame"},
		{"zstd skippable frame truncated", append(bytes.Clone(zs), skippable(100)[:50]...), Options{}, ErrCorrupt, "skippable"},
		{"tar truncated mid-header", good[:512+100], Options{}, ErrCorrupt, "inside a header"},
		{"tar truncated mid-data", truncMidData(t, good), Options{}, ErrCorrupt, "inside a header or an entry's data"},
		{"gzip of a tar truncated mid-data", gzipGo(t, truncMidData(t, good)), Options{}, ErrCorrupt, "entry's data"},
		{"zstd of a tar truncated mid-header", zstdSingle(t, good[:1000]), Options{}, ErrCorrupt, "inside a header"},
		{"bad tar checksum", flip(good, 148), Options{}, ErrCorrupt, "tar"},
		{"GNU sparse", gnuSparse(t), Options{}, ErrSparse, "sparse"},
		{"PAX sparse 1.0", paxSparse("1", "0"), Options{}, ErrSparse, "PAX GNU.sparse"},
		{"PAX sparse 0.1", paxSparse01(), Options{}, ErrSparse, "GNU.sparse"},
		{"unsafe PAX path with NUL", tarOf(paxEntry("path", "a\x00b"), rawHeader("x", '0', 0, "")), Options{}, nil, ""},
		{"empty name", tarOf(rawHeader("", '0', 0, "")), Options{}, ErrCorrupt, "empty name"},
		{"hard link without target", tarOf(rawHeader("x", '1', 0, "")), Options{}, ErrCorrupt, "without a target"},
		{"MaxEntries", good, Options{Limits: Limits{MaxEntries: 3}}, ErrLimit, "MaxEntries 3"},
		{"MaxPathLen", good, Options{Limits: Limits{MaxPathLen: 8}}, ErrLimit, "MaxPathLen 8"},
		{"MaxPathLen link", tarOf(rawHeader("x", '2', 0, strings.Repeat("l", 30))), Options{Limits: Limits{MaxPathLen: 20}}, ErrLimit, "MaxPathLen 20"},
		{"MaxUncompressedBytes", gz, Options{Limits: Limits{MaxUncompressedBytes: 5000}}, ErrLimit, "MaxUncompressedBytes 5000"},
		{"MaxUncompressedBytes plain", good, Options{Limits: Limits{MaxUncompressedBytes: 5000}}, ErrLimit, "MaxUncompressedBytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, mode := range []int{modeSync, modeAsync, modeHash} {
				c.opts.mode = mode
				_, err := index(t, c.blob, c.opts)
				if c.want == nil {
					// NUL in a PAX path: archive/tar rejects it itself
					// (ErrCorrupt) or we do (ErrUnsafePath).
					if !errors.Is(err, ErrUnsafePath) && !errors.Is(err, ErrCorrupt) {
						t.Fatalf("err %v, want ErrUnsafePath or ErrCorrupt", err)
					}
					continue
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("err %v, want %v", err, c.want)
				}
				if !strings.Contains(err.Error(), c.msg) {
					t.Errorf("err %q does not say %q", err, c.msg)
				}
			}
		})
	}
	// A valid gzip header with FHCRC is accepted.
	if _, err := index(t, withFHCRC(gz, false), Options{}); err != nil {
		t.Errorf("FHCRC header: %v", err)
	}
}

// TestReaderError: an error of the blob reader is returned as is (wrapped).
func TestReaderError(t *testing.T) {
	u := writeTar(t, genFiles(11, 256<<10), tar.FormatPAX, nil)
	boom := errors.New("boom: blob digest mismatch")
	for _, c := range codecs {
		blob := c.compress(t, u)
		for _, cut := range []int{0, 1, 100, 300, len(blob) / 2, len(blob) - 1, len(blob)} {
			for _, mode := range []int{modeSync, modeAsync, modeHash} {
				r := io.MultiReader(bytes.NewReader(blob[:cut]), iotest.ErrReader(boom))
				_, err := Index(context.Background(), r, Options{MediaType: c.mediaType, mode: mode})
				if !errors.Is(err, boom) {
					t.Errorf("%s cut at %d: %v, want the reader's error", c.name, cut, err)
				}
			}
		}
	}
}

func TestCleanAbs(t *testing.T) {
	for in, want := range map[string]string{
		"./": "/", "/": "/", ".": "/", "./a/b/": "/a/b", "a/b": "/a/b", "/a/b": "/a/b", "/a/b/": "/a/b",
		"a//b": "/a/b", "a/./b": "/a/b", "a/b/..": "/a", "a/../b": "/b", "././a": "/a", "..a/b": "/..a/b",
		"a/..b": "/a/..b", ".wh..wh..opq": "/.wh..wh..opq", "//a": "/a", "a/.": "/a",
	} {
		if got, ok := cleanAbs(in); !ok || got != want {
			t.Errorf("cleanAbs(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	// ".." stops at the root, as in containerd's and umoci's appliers.
	for in, want := range map[string]string{"..": "/", "../": "/", "../x": "/x", "a/../../x": "/x", "/../x": "/x", "./..": "/", "a/b/../../../c": "/c"} {
		if got, ok := cleanAbs(in); !ok || got != want {
			t.Errorf("cleanAbs(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"a/\x00", "\x00"} {
		if got, ok := cleanAbs(in); ok {
			t.Errorf("cleanAbs(%q) = %q, accepted", in, got)
		}
	}
}

func TestSniffAndMediaTypes(t *testing.T) {
	for mt, want := range map[string]layerz.Compression{
		layerz.MediaTypeOCILayer: layerz.None, layerz.MediaTypeOCILayerGzip: layerz.Gzip, layerz.MediaTypeOCILayerZstd: layerz.Zstd,
		layerz.MediaTypeOCINondistributable: layerz.None, layerz.MediaTypeOCINondistributableGzip: layerz.Gzip,
		layerz.MediaTypeOCINondistributableZstd: layerz.Zstd, layerz.MediaTypeDockerLayer: layerz.None,
		layerz.MediaTypeDockerLayerGzip: layerz.Gzip, layerz.MediaTypeDockerForeignLayerGzip: layerz.Gzip,
	} {
		if got, err := layerz.ForMediaType(mt); err != nil || got != want {
			t.Errorf("%s: %v %v", mt, got, err)
		}
	}
	for _, mt := range []string{"", "application/json", "application/vnd.oci.image.layer.v1.tar+bzip2"} {
		if _, err := layerz.ForMediaType(mt); !errors.Is(err, ErrUnknownMediaType) {
			t.Errorf("%q: %v", mt, err)
		}
	}
	ustar := rawHeader("x", '0', 0, "")
	for _, c := range []struct {
		b    []byte
		want layerz.Compression
		ok   bool
	}{
		{nil, layerz.None, false}, {[]byte{0x1f}, layerz.None, false}, {[]byte{0x1f, 0x8b}, layerz.Gzip, true},
		{[]byte{0x28, 0xb5, 0x2f}, layerz.None, false}, {[]byte{0x28, 0xb5, 0x2f, 0xfd}, layerz.Zstd, true},
		{[]byte{0x5a, 0x2a, 0x4d, 0x18}, layerz.Zstd, true}, {[]byte{0x52}, layerz.None, false},
		{ustar, layerz.None, true}, {[]byte("hello world"), layerz.None, true}, {[]byte{0x1f, 0x00}, layerz.None, true},
	} {
		if got, ok := layerz.Sniff(c.b); got != c.want || ok != c.ok {
			t.Errorf("layerz.Sniff(% x) = %v %v, want %v %v", c.b, got, ok, c.want, c.ok)
		}
	}
}

// TestRandomInput feeds random and mutated blobs: never a panic, and every
// error wraps one of the sentinels.
func TestRandomInput(t *testing.T) {
	t.Parallel()
	good := writeTar(t, append(fileSet(true, true)[:9], genFiles(8, 100<<10)...), tar.FormatPAX, nil)
	var bases [][]byte
	for _, c := range codecs {
		bases = append(bases, c.compress(t, good))
	}
	r := rand.New(rand.NewPCG(5, 5))
	prefixes := [][]byte{nil, {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, {0x28, 0xb5, 0x2f, 0xfd}, {0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 1, 1}}
	sentinels := []error{ErrCorrupt, ErrSparse, ErrUnsafePath, ErrLimit, ErrCompressionMismatch}
	check := func(blob []byte, opts Options) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic on % x...: %v", blob[:min(len(blob), 32)], p)
			}
		}()
		_, err := index(t, blob, opts)
		if err == nil {
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	n := 300
	if raceEnabled {
		n = 60
	}
	if testing.Short() {
		n = 50
	}
	for i := 0; i < n; i++ {
		b := randomBytes(uint64(i), r.IntN(4000))
		b = append(bytes.Clone(prefixes[i%len(prefixes)]), b...)
		check(b, Options{mode: 1 + i%3})
		// mutate a valid blob: flip a few bytes, or cut it
		base := bytes.Clone(bases[i%len(bases)])
		for k := 0; k < 1+r.IntN(4); k++ {
			base[r.IntN(len(base))] ^= byte(1 + r.IntN(255))
		}
		if r.IntN(3) == 0 {
			base = base[:r.IntN(len(base))]
		}
		check(base, Options{mode: 1 + i%3, SpanBytes: 16 << 10})
	}
}

func TestCancel(t *testing.T) {
	u := writeTar(t, genFiles(6, 2<<20+scaled(2<<20)), tar.FormatPAX, nil)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			blob := c.compress(t, u)
			for _, mode := range []int{modeSync, modeAsync, modeHash} {
				before := runtime.NumGoroutine()
				ctx, cancel := context.WithCancel(context.Background())
				// Cancel once a quarter of the blob has been read.
				r := &cancelReader{r: bytes.NewReader(blob), at: len(blob) / 4, cancel: cancel}
				_, err := Index(ctx, r, Options{mode: mode})
				cancel()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("mode %d: err %v, want context.Canceled", mode, err)
				}
				if r.n >= len(blob) {
					t.Errorf("mode %d: read the whole blob after the cancellation", mode)
				}
				deadline := time.Now().Add(2 * time.Second)
				for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if g := runtime.NumGoroutine(); g > before {
					t.Errorf("mode %d: %d goroutines after, %d before", mode, g, before)
				}
			}
			// Cancelled before the start.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := Index(ctx, bytes.NewReader(blob), Options{}); !errors.Is(err, context.Canceled) {
				t.Errorf("pre-cancelled: %v", err)
			}
		})
	}
}

// cancelReader calls cancel once at bytes have been read.
type cancelReader struct {
	r      io.Reader
	n, at  int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.at {
		c.cancel()
	}
	return n, err
}

func TestProgress(t *testing.T) {
	u := writeTar(t, genFiles(7, 3<<20), tar.FormatPAX, nil)
	blob := gzipKlauspost(t, u)
	var ps []Progress
	res := mustIndex(t, blob, Options{Progress: func(p Progress) { ps = append(ps, p) }})
	if len(ps) < 2 {
		t.Fatalf("%d progress calls", len(ps))
	}
	last := ps[len(ps)-1]
	if last.CompressedBytes != res.CompressedSize || last.UncompressedBytes != res.UncompressedSize || last.Entries != len(res.Entries) {
		t.Errorf("final progress %+v, result %d %d %d", last, res.CompressedSize, res.UncompressedSize, len(res.Entries))
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].CompressedBytes < ps[i-1].CompressedBytes || ps[i].UncompressedBytes < ps[i-1].UncompressedBytes {
			t.Errorf("progress goes back: %+v after %+v", ps[i], ps[i-1])
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x55
	return c
}

func flipBits(b []byte, i int, m byte) []byte {
	c := bytes.Clone(b)
	c[i] |= m
	return c
}

func flipMiddle(b []byte) []byte {
	c := bytes.Clone(b)
	for i := len(c) / 3; i < len(c)/3+16; i++ {
		c[i] ^= 0xa5
	}
	return c
}

// withFHCRC rewrites the first gzip member header with FHCRC set (a wrong
// CRC16 when bad).
func withFHCRC(gz []byte, bad bool) []byte {
	h := bytes.Clone(gz[:10])
	h[3] |= 1 << 1 // FHCRC (RFC 1952 section 2.3.1)
	crc := crc16(h)
	if bad {
		crc ^= 1
	}
	out := append(h, byte(crc), byte(crc>>8))
	return append(out, gz[10:]...)
}

func tarOf(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return append(b, endBlocks()...)
}

// truncMidData cuts the tar inside the data of its 1 MiB file.
func truncMidData(t *testing.T, good []byte) []byte {
	res := mustIndex(t, good, Options{})
	for _, e := range res.Entries {
		if e.Size > 1<<20 {
			return good[:e.Offset+e.Size/2]
		}
	}
	t.Fatal("no large file")
	return nil
}

// gnuSparse returns a tar with an old GNU sparse ('S') entry.
func gnuSparse(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Size: 512, Mode: 0644, Format: tar.FormatGNU})
	tw.Write(make([]byte, 512))
	tw.Close()
	b := buf.Bytes()
	b[156] = 'S'
	// sparse[0] = {offset 0, numbytes 512}; realsize 4096
	copy(b[386:], fmt.Sprintf("%011o\x00", 0))
	copy(b[398:], fmt.Sprintf("%011o\x00", 512))
	copy(b[483:], fmt.Sprintf("%011o\x00", 4096))
	setChecksum(b)
	return b
}

// paxSparse returns a tar with a PAX GNU sparse 1.0 entry.
func paxSparse(major, minor string) []byte {
	data := pad512([]byte("1\n0\n512\n"))
	data = append(data, make([]byte, 512)...)
	return tarOf(paxEntry("GNU.sparse.major", major, "GNU.sparse.minor", minor, "GNU.sparse.name", "sparse", "GNU.sparse.realsize", "4096"),
		rawHeader("GNUSparseFile.0/sparse", '0', int64(len(data)), ""), data)
}

// paxSparse01 returns a tar with a PAX GNU sparse 0.1 entry.
func paxSparse01() []byte {
	return tarOf(paxEntry("GNU.sparse.size", "4096", "GNU.sparse.numblocks", "1", "GNU.sparse.map", "0,512"),
		rawHeader("sparse", '0', 512, ""), make([]byte, 512))
}

func crc16(b []byte) uint16 {
	// The low 16 bits of the CRC32 (RFC 1952 FHCRC).
	var c uint32 = 0xffffffff
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xedb88320
			} else {
				c >>= 1
			}
		}
	}
	return uint16(^c)
}

// FuzzIndex: any blob, with any of the media types, indexes or fails with a
// sentinel error, never panics; when it succeeds, the offsets lie inside the
// stream. Run with: go test ./tarindex -fuzz FuzzIndex
func FuzzIndex(f *testing.F) {
	small := writeTar(f, fileSet(false, false)[:9], tar.FormatPAX, nil)
	for _, c := range codecs {
		f.Add(c.compress(f, small), uint8(0))
	}
	f.Add(gnuSparse(&testing.T{}), uint8(1))
	f.Add(paxSparse("1", "0"), uint8(1))
	mts := []string{"", layerz.MediaTypeOCILayer, layerz.MediaTypeOCILayerGzip, layerz.MediaTypeOCILayerZstd}
	f.Fuzz(func(t *testing.T, blob []byte, mt uint8) {
		res, err := index(t, blob, Options{MediaType: mts[int(mt)%len(mts)], SpanBytes: 1 << 10, Limits: Limits{MaxUncompressedBytes: 64 << 20}})
		if err != nil {
			for _, s := range []error{ErrCorrupt, ErrSparse, ErrUnsafePath, ErrLimit, ErrCompressionMismatch} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		for _, e := range res.Entries {
			if e.Offset < 0 || e.Size < 0 || e.Offset+e.Size > res.UncompressedSize {
				t.Fatalf("entry %s outside the stream", describe(e))
			}
		}
	})
}
