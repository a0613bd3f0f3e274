package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ociclip/ociclip/layerz"
)

// refEntries walks a tar with archive/tar alone: the kept headers' clean
// paths, kinds, data offsets and sizes, or archive/tar's error.
func refEntries(u []byte) ([]string, error) {
	cr := &layerz.CountingReader{R: bytes.NewReader(u)}
	tr := tar.NewReader(cr)
	var out []string
	for {
		h, err := tr.Next()
		if err == tar.ErrInsecurePath {
			err = nil
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
		default:
			continue
		}
		p, _ := cleanAbs(h.Name)
		off, size := cr.N, h.Size
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA && h.Typeflag != tar.TypeCont {
			off, size = 0, 0
		}
		out = append(out, fmt.Sprintf("%s %c %d+%d link=%q mode=%o uid=%d mtime=%d", p, h.Typeflag, off, size, h.Linkname, h.Mode&07777, h.Uid, h.ModTime.Unix()))
	}
}

func gotEntries(es []Entry) []string {
	var out []string
	for _, e := range es {
		t, ok := map[EntryKind]byte{KindFile: '0', KindDir: '5', KindSymlink: '2', KindHardlink: '1'}[e.Kind]
		if !ok {
			continue // devices and FIFOs: refEntries leaves them out
		}
		link := e.Linkname
		if e.Kind == KindHardlink {
			link = strings.TrimPrefix(link, "/")
		}
		out = append(out, fmt.Sprintf("%s %c %d+%d link=%q mode=%o uid=%d mtime=%d", e.Path, t, e.Offset, e.Size, link, e.Mode, e.Uid, e.ModTime.Unix()))
	}
	return out
}

// TestTarFastPathMatchesArchiveTar indexes tars that mix headers of the
// fast path (plain USTAR) with headers it hands to archive/tar (PAX, GNU,
// global headers, V7 regular files, devices, names split into prefix and
// name), and corrupted copies of them, and compares the entries (and
// whether there is an error) with archive/tar's own walk.
func TestTarFastPathMatchesArchiveTar(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	long := strings.Repeat("d", 90) + "/" + strings.Repeat("e", 60) + "/file"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body string) {
		if h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = t0
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0755, Format: tar.FormatUSTAR}, "")
	add(tar.Header{Name: "etc/a", Typeflag: tar.TypeReg, Mode: 0644, Uid: 7, Format: tar.FormatUSTAR}, strings.Repeat("a", 700))
	add(tar.Header{Name: long, Typeflag: tar.TypeReg, Mode: 0600, Format: tar.FormatUSTAR}, "prefix and name") // USTAR prefix
	add(tar.Header{Name: "etc/pax", Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatPAX, PAXRecords: map[string]string{"user.x": "y"}}, "pax")
	add(tar.Header{Name: "etc/after-pax", Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatUSTAR}, "b")
	add(tar.Header{Name: strings.Repeat("g", 120), Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatGNU}, "gnu long name")
	add(tar.Header{Name: "etc/link", Typeflag: tar.TypeSymlink, Linkname: "a", Format: tar.FormatUSTAR}, "")
	add(tar.Header{Name: "etc/hard", Typeflag: tar.TypeLink, Linkname: "etc/a", Format: tar.FormatUSTAR}, "")
	add(tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Format: tar.FormatUSTAR}, "")
	add(tar.Header{Name: "etc/exact", Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatUSTAR}, strings.Repeat("x", 512))
	add(tar.Header{Name: "etc/empty", Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatUSTAR}, "")
	add(tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "global"}}, "")
	add(tar.Header{Name: "etc/after-global", Typeflag: tar.TypeReg, Mode: 0644, Format: tar.FormatUSTAR}, "c")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	base := buf.Bytes()
	headerAt := func(name string) int {
		i := bytes.Index(base, []byte(name+"\x00"))
		if i < 0 || i%512 != 0 {
			t.Fatalf("header of %q not found", name)
		}
		return i
	}
	type variant struct {
		name string
		tar  []byte
	}
	variants := []variant{{"clean", base}}
	mut := func(name string, f func(b []byte)) {
		b := append([]byte(nil), base...)
		f(b)
		variants = append(variants, variant{name, b})
	}
	a := headerAt("etc/a")
	mut("checksum off by one", func(b []byte) { b[a+148+5]++ })
	mut("size not octal", func(b []byte) { b[a+124+3] = '9' })
	mut("size spaces and NULs", func(b []byte) {
		copy(b[a+124:a+136], " 0001274\x00  \x00")
		fixChecksum(b[a : a+512])
	})
	mut("mode base-256", func(b []byte) { b[a+100] = 0x80; fixChecksum(b[a : a+512]) })
	mut("V7 regular file", func(b []byte) { b[a+156] = 0; copy(b[a+257:a+265], make([]byte, 8)); fixChecksum(b[a : a+512]) })
	mut("V7 dir with slash", func(b []byte) {
		d := headerAt("etc/")
		b[d+156] = 0
		fixChecksum(b[d : d+512])
	})
	mut("devmajor not octal", func(b []byte) { copy(b[a+329:a+337], "zz\x00\x00\x00\x00\x00\x00"); fixChecksum(b[a : a+512]) })
	mut("star trailer", func(b []byte) { copy(b[a+508:a+512], "tar\x00"); fixChecksum(b[a : a+512]) })
	mut("hard link with size", func(b []byte) {
		h := headerAt("etc/hard")
		copy(b[h+124:h+136], "00000001000\x00")
		fixChecksum(b[h : h+512])
	})
	for _, cut := range []int{a + 100, a + 512 + 100, a + 512 + 700, a + 512 + 710, len(base) - 1024, len(base) - 512} {
		variants = append(variants, variant{fmt.Sprintf("cut at %d", cut), base[:cut]})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			want, werr := refEntries(v.tar)
			for _, mode := range []int{modeSync, modeHash} {
				res, err := Index(context.Background(), bytes.NewReader(v.tar), Options{MediaType: "application/vnd.oci.image.layer.v1.tar", mode: mode})
				if (err != nil) != (werr != nil) {
					t.Fatalf("mode %d: Index error %v, archive/tar error %v", mode, err, werr)
				}
				if err != nil {
					continue
				}
				got := gotEntries(res.Entries)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("mode %d: entries differ\nindex:\n%s\narchive/tar:\n%s", mode, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

// fixChecksum rewrites a header block's checksum field.
func fixChecksum(h []byte) {
	copy(h[148:156], "        ")
	var s int
	for _, c := range h[:512] {
		s += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", s))
}
