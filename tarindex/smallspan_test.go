package tarindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/ociclip/ociclip/layerz"
)

// smallFileLayer is a tar of stretches of small files, one large file and
// medium files, compressible enough for frequent deflate block ends.
func smallFileLayer(t *testing.T) []byte {
	var fs []tfile
	add := func(name string, n int) {
		fs = append(fs, tfile{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)}, content: pseudo(uint64(len(fs)), n)})
	}
	for i := range 500 {
		add(fmt.Sprintf("small1/f%03d", i), 1000+i*37%5000)
		if i%40 == 0 { // entries without data count for nothing
			fs = append(fs, tfile{hdr: tar.Header{Name: fmt.Sprintf("small1/l%03d", i), Typeflag: tar.TypeSymlink, Linkname: "x", Mode: 0o777}})
		}
	}
	add("big/one", 6<<20)
	for i := range 40 {
		add(fmt.Sprintf("medium/f%02d", i), 90<<10)
	}
	for i := range 300 {
		add(fmt.Sprintf("small2/f%03d", i), 3000)
	}
	return writeTar(t, fs, tar.FormatPAX, nil)
}

// TestSmallFileSpans: resume points are candidates at the first block end
// SmallFileSpanBytes after the previous candidate, kept when SpanBytes passed
// since the last point kept or SmallFileSpanFiles files with data started
// since it; the same in every pipeline mode, and each one resumes.
func TestSmallFileSpans(t *testing.T) {
	t.Parallel()
	const span, small = 1 << 20, 64 << 10
	u := smallFileLayer(t)
	blob := gzipGo(t, u)
	var first []layerz.ResumePoint
	for _, mode := range []int{modeSync, modeAsync, modeHash} {
		opts := Options{MediaType: layerz.MediaTypeOCILayerGzip, SpanBytes: span, SmallFileSpanBytes: small, mode: mode}
		ends, _ := recordEnds(&opts)
		res := mustIndex(t, blob, opts)
		// The rule, applied afterwards to the block ends and entries.
		var starts []int64
		for _, e := range res.Entries {
			if e.Kind == KindFile && e.Size > 0 {
				starts = append(starts, e.Offset)
			}
		}
		var want []int64
		var lastCand, lastKept int64
		for _, be := range *ends {
			if be.Final || be.UOff-lastCand < small {
				continue
			}
			lastCand = be.UOff
			files := 0
			for _, s := range starts {
				if s > lastKept && s <= be.UOff {
					files++
				}
			}
			if be.UOff-lastKept >= span || files >= SmallFileSpanFiles {
				want = append(want, be.UOff)
				lastKept = be.UOff
			}
		}
		var got []int64
		for _, rp := range res.ResumePoints {
			got = append(got, rp.UOff)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("mode %d: resume points at %v, the rule places them at %v", mode, got, want)
		}
		// Close where files are small, SpanBytes apart in the large file.
		bigStart, bigEnd := starts[500], starts[500]+6<<20
		var close, inBig int
		for i := 1; i < len(got); i++ {
			d := got[i] - got[i-1]
			switch {
			case got[i] < bigStart && d < span/2:
				close++
			case got[i-1] >= bigStart && got[i] <= bigEnd:
				inBig++
				if d < span {
					t.Errorf("mode %d: points %d and %d inside the large file", mode, got[i-1], got[i])
				}
			}
		}
		if close < 5 || inBig < 3 {
			t.Errorf("mode %d: %d close points among the small files, %d in the large file (points %v)", mode, close, inBig, got)
		}
		if first == nil {
			first = res.ResumePoints
			for i, rp := range res.ResumePoints {
				rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), rp)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, min(64<<10, int64(len(u))-rp.UOff))
				if _, err := io.ReadFull(rc, b); err != nil || !bytes.Equal(b, u[rp.UOff:rp.UOff+int64(len(b))]) {
					t.Fatalf("resume point %d at %d: %v, or other bytes", i, rp.UOff, err)
				}
			}
		}
	}
	// Without the small-file spacing: every SpanBytes only.
	res := mustIndex(t, blob, Options{SpanBytes: span, SmallFileSpanBytes: -1})
	for i := 1; i < len(res.ResumePoints); i++ {
		if d := res.ResumePoints[i].UOff - res.ResumePoints[i-1].UOff; d < span {
			t.Fatalf("SmallFileSpanBytes -1: points %d apart", d)
		}
	}
	if len(res.ResumePoints) >= len(first) {
		t.Errorf("%d points without the small-file spacing, %d with it", len(res.ResumePoints), len(first))
	}
}

func TestSmallFileSpanNormalized(t *testing.T) {
	for _, c := range []struct{ span, small, want int64 }{
		{0, 0, DefaultSmallFileSpanBytes},
		{0, -5, -1},
		{-1, 0, -1},
		{1 << 20, 2 << 20, -1}, // not below SpanBytes
		{1 << 20, 64 << 10, 64 << 10},
	} {
		if got := (Options{SpanBytes: c.span, SmallFileSpanBytes: c.small}).Normalized().SmallFileSpanBytes; got != c.want {
			t.Errorf("SpanBytes %d, SmallFileSpanBytes %d: normalized %d, want %d", c.span, c.small, got, c.want)
		}
	}
}
