package tarindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ociclip/ociclip/layerz"
)

// needTool returns the path of an external tool; without it the test is
// skipped, unless CI=true, where a missing tool fails the test.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tool %s is required with CI=true: %v", name, err)
		}
		t.Skipf("tool %s not installed", name)
	}
	return p
}

// tfile is one entry of a generated tar and what Index must report for it.
type tfile struct {
	hdr     tar.Header
	content []byte
	want    Entry // Path, Kind, Mode, Uid, Gid, Size, Linkname, Devmajor, Devminor
}

// pseudo returns n bytes of half-compressible deterministic data.
func pseudo(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	words := []string{"lorem ", "ipsum ", "dolor ", "sit ", "amet ", "\n", "usr/lib/", "0x1f8b ", "ELF "}
	for i := 0; i < n; {
		if r.IntN(4) == 0 {
			// random run
			k := min(n-i, 1+r.IntN(300))
			for j := 0; j < k; j++ {
				b[i+j] = byte(r.Uint32())
			}
			i += k
			continue
		}
		w := words[r.IntN(len(words))]
		i += copy(b[i:], w)
	}
	return b
}

// randomBytes returns n incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fileSet returns a set of entries covering every kind, size class and
// name form; long selects names and link targets longer than 100 bytes, and
// old adds a pre-1970 time (not encodable in USTAR).
func fileSet(long, old bool) []tfile {
	t0 := time.Unix(1700000000, 0)
	mk := func(name string, typ byte, mode int64, content []byte, want Entry) tfile {
		h := tar.Header{Name: name, Typeflag: typ, Mode: mode, Uid: 1000, Gid: 100, ModTime: t0, Size: int64(len(content))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		want.Uid, want.Gid = 1000, 100
		if want.Mode == 0 {
			want.Mode = uint32(mode & 07777)
		}
		if typ == tar.TypeReg {
			want.Size = int64(len(content))
		}
		return tfile{hdr: h, content: content, want: want}
	}
	longDir := strings.Repeat("d", 60) + "/" + strings.Repeat("e", 70) + "/" + strings.Repeat("f", 80)
	longFile := longDir + "/" + strings.Repeat("n", 120)
	fs := []tfile{
		mk("./", tar.TypeDir, 0755, nil, Entry{Path: "/", Kind: KindDir}),
		mk("./etc/", tar.TypeDir, 0755, nil, Entry{Path: "/etc", Kind: KindDir}),
		// forward hard link: its target comes later
		{hdr: tar.Header{Name: "etc/fwd-link", Typeflag: tar.TypeLink, Linkname: "./etc/later", Mode: 0644, ModTime: t0},
			want: Entry{Path: "/etc/fwd-link", Kind: KindHardlink, Linkname: "./etc/later", Mode: 0644}},
		mk("etc/empty", tar.TypeReg, 0644, nil, Entry{Path: "/etc/empty", Kind: KindFile}),
		mk("etc/one", tar.TypeReg, 0644, []byte{'x'}, Entry{Path: "/etc/one", Kind: KindFile}),
		mk("etc/s511", tar.TypeReg, 0600, pseudo(1, 511), Entry{Path: "/etc/s511", Kind: KindFile}),
		mk("etc/s512", tar.TypeReg, 0600, pseudo(2, 512), Entry{Path: "/etc/s512", Kind: KindFile}),
		mk("etc/s513", tar.TypeReg, 0600, pseudo(3, 513), Entry{Path: "/etc/s513", Kind: KindFile}),
		mk("etc/later", tar.TypeReg, 0644, pseudo(4, 1000), Entry{Path: "/etc/later", Kind: KindFile}),
		mk("./bin/big", tar.TypeReg, 0755, pseudo(5, 1<<20+1), Entry{Path: "/bin/big", Kind: KindFile}),
		mk("/abs/file", tar.TypeReg, 0644, pseudo(6, 3000), Entry{Path: "/abs/file", Kind: KindFile}),
		mk("a//b/./c/../f", tar.TypeReg, 0644, pseudo(7, 10), Entry{Path: "/a/b/f", Kind: KindFile}),
		// backward hard link
		{hdr: tar.Header{Name: "bin/big-link", Typeflag: tar.TypeLink, Linkname: "bin/big", Mode: 0755, ModTime: t0},
			want: Entry{Path: "/bin/big-link", Kind: KindHardlink, Linkname: "bin/big", Mode: 0755}},
		{hdr: tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "../bin/./big", Mode: 0777, ModTime: t0},
			want: Entry{Path: "/bin/sh", Kind: KindSymlink, Linkname: "../bin/./big", Mode: 0777}},
		mk("tmp/", tar.TypeDir, 01777, nil, Entry{Path: "/tmp", Kind: KindDir}),
		mk("usr/bin/suid", tar.TypeReg, 04755, pseudo(8, 100), Entry{Path: "/usr/bin/suid", Kind: KindFile}),
		mk("usr/bin/sgid", tar.TypeReg, 02755, pseudo(9, 100), Entry{Path: "/usr/bin/sgid", Kind: KindFile}),
		mk("usr/bin/all", tar.TypeReg, 07777, pseudo(10, 100), Entry{Path: "/usr/bin/all", Kind: KindFile}),
		{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0666, Devmajor: 1, Devminor: 3, ModTime: t0},
			want: Entry{Path: "/dev/null", Kind: KindChar, Mode: 0666, Devmajor: 1, Devminor: 3}},
		{hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0660, Devmajor: 8, Devminor: 0, ModTime: t0},
			want: Entry{Path: "/dev/sda", Kind: KindBlock, Mode: 0660, Devmajor: 8}},
		{hdr: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0600, ModTime: t0},
			want: Entry{Path: "/run/fifo", Kind: KindFIFO, Mode: 0600}},
		{hdr: tar.Header{Name: "var/.wh.gone", Typeflag: tar.TypeReg, Mode: 0, ModTime: t0},
			want: Entry{Path: "/var/.wh.gone", Kind: KindFile}},
		{hdr: tar.Header{Name: "var/zero-time", Typeflag: tar.TypeReg, Mode: 0644, ModTime: time.Unix(0, 0)},
			want: Entry{Path: "/var/zero-time", Kind: KindFile, Mode: 0644}},
	}
	if long {
		fs = append(fs,
			mk(longFile, tar.TypeReg, 0644, pseudo(11, 5000), Entry{Path: "/" + longFile, Kind: KindFile}),
			tfile{hdr: tar.Header{Name: "long-symlink", Typeflag: tar.TypeSymlink, Linkname: "/" + longFile, Mode: 0777, ModTime: t0},
				want: Entry{Path: "/long-symlink", Kind: KindSymlink, Linkname: "/" + longFile, Mode: 0777}},
			tfile{hdr: tar.Header{Name: longDir + "/hl", Typeflag: tar.TypeLink, Linkname: longFile, Mode: 0644, ModTime: t0},
				want: Entry{Path: "/" + longDir + "/hl", Kind: KindHardlink, Linkname: longFile, Mode: 0644}},
		)
	}
	if old {
		fs = append(fs, tfile{hdr: tar.Header{Name: "var/old", Typeflag: tar.TypeReg, Mode: 0644, ModTime: time.Unix(-86400*365*20, 0), Size: 3},
			content: []byte("old"), want: Entry{Path: "/var/old", Kind: KindFile, Mode: 0644, Size: 3}})
	}
	for i := range fs {
		if fs[i].hdr.Typeflag == tar.TypeReg {
			fs[i].hdr.Size = int64(len(fs[i].content))
		}
	}
	return fs
}

// writeTar writes files in format; modify may adjust each header.
func writeTar(t testing.TB, files []tfile, format tar.Format, modify func(*tar.Header)) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		h.Format = format
		if modify != nil {
			modify(&h)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("WriteHeader %q (%v): %v", h.Name, format, err)
		}
		if _, err := tw.Write(f.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// codec compresses a tar for a test and names the media type to use.
type codec struct {
	name      string
	mediaType string
	comp      layerz.Compression
	compress  func(t testing.TB, b []byte) []byte
}

func gzipGo(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func gzipKlauspost(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := kgzip.NewWriterLevel(&buf, kgzip.DefaultCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// gzipMulti writes b as several gzip members, split at uneven points.
func gzipMulti(t testing.TB, b []byte) []byte {
	var out []byte
	cut := []int{0, len(b) / 3, len(b)/3 + 1, len(b) * 3 / 4, len(b)}
	for i := 0; i+1 < len(cut); i++ {
		var buf bytes.Buffer
		w := kgzip.NewWriter(&buf)
		w.Name = "part" // FNAME
		w.Comment = "member comment"
		w.Extra = []byte("ex")
		w.Write(b[cut[i]:cut[i+1]])
		w.Close()
		out = append(out, buf.Bytes()...)
	}
	return out
}

func gzipExec(tool string, args ...string) func(t testing.TB, b []byte) []byte {
	return func(t testing.TB, b []byte) []byte {
		t.Helper()
		p := needTool(t, tool)
		cmd := exec.Command(p, args...)
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return out
	}
}

func zstdSingle(t testing.TB, b []byte) []byte {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	defer e.Close()
	return e.EncodeAll(b, nil)
}

// zstdMulti writes b as several frames with skippable frames in between.
func zstdMulti(t testing.TB, b []byte) []byte {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	defer e.Close()
	out := skippable(3)
	const step = 100 << 10
	for i := 0; i < len(b); i += step {
		out = e.EncodeAll(b[i:min(len(b), i+step)], out)
		if i == 0 {
			out = append(out, skippable(10)...)
		}
	}
	return out
}

func skippable(n int) []byte {
	b := []byte{0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	return append(b, bytes.Repeat([]byte{0xaa}, n)...)
}

func plain(t testing.TB, b []byte) []byte { return b }

var codecs = []codec{
	{"plain", layerz.MediaTypeOCILayer, layerz.None, plain},
	{"gzip-go", layerz.MediaTypeOCILayerGzip, layerz.Gzip, gzipGo},
	{"gzip-klauspost", layerz.MediaTypeDockerLayerGzip, layerz.Gzip, gzipKlauspost},
	{"gzip-multi", layerz.MediaTypeOCILayerGzip, layerz.Gzip, gzipMulti},
	{"zstd", layerz.MediaTypeOCILayerZstd, layerz.Zstd, zstdSingle},
	{"zstd-multi", layerz.MediaTypeOCINondistributableZstd, layerz.Zstd, zstdMulti},
}

// index runs Index on blob.
func index(t testing.TB, blob []byte, opts Options) (*Result, error) {
	t.Helper()
	return Index(context.Background(), bytes.NewReader(blob), opts)
}

func mustIndex(t testing.TB, blob []byte, opts Options) *Result {
	t.Helper()
	r, err := index(t, blob, opts)
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	return r
}

// decompress returns the uncompressed stream of blob by independent means.
func decompress(t testing.TB, blob []byte, c layerz.Compression) []byte {
	t.Helper()
	switch c {
	case layerz.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case layerz.Zstd:
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		b, err := d.DecodeAll(blob, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return blob
}

func describe(e Entry) string {
	return fmt.Sprintf("%s %s mode=%o uid=%d gid=%d size=%d link=%q dev=%d,%d", e.Path, e.Kind, e.Mode, e.Uid, e.Gid, e.Size, e.Linkname, e.Devmajor, e.Devminor)
}

// scaled returns n, or a third of it under the race detector.
func scaled(n int) int {
	if raceEnabled {
		return n / 3
	}
	return n
}
