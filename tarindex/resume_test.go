package tarindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ociclip/ociclip/layerz"
)

// checkResumeEverywhere resumes inflation from every resume point of blob
// and compares the output with the sequential stream u: at least 256 KiB
// from each point, and to the end of the stream from some of them.
func checkResumeEverywhere(t *testing.T, blob, u []byte, res *Result, ends []layerz.BlockEnd, span int64) {
	t.Helper()
	// Exactly the block ends the span rule selects.
	var want []int64
	var prev int64
	for _, e := range ends {
		if !e.Final && e.UOff-prev >= span {
			want = append(want, e.UOff)
			prev = e.UOff
		}
	}
	if len(want) != len(res.ResumePoints) {
		t.Fatalf("%d resume points, the span rule selects %d block ends", len(res.ResumePoints), len(want))
	}
	if len(want) < 5 {
		t.Fatalf("only %d resume points", len(want))
	}
	isEnd := map[layerz.BlockEnd]bool{}
	for _, e := range ends {
		e.Final = false
		isEnd[e] = true
	}
	var last int64
	for i, rp := range res.ResumePoints {
		if rp.UOff-last < span {
			t.Errorf("resume point %d at %d: less than %d after %d", i, rp.UOff, span, last)
		}
		last = rp.UOff
		if rp.UOff != want[i] {
			t.Errorf("resume point %d at %d, want %d", i, rp.UOff, want[i])
		}
		if !isEnd[layerz.BlockEnd{COff: rp.COff, UOff: rp.UOff, Bit: rp.BitOffset}] {
			t.Errorf("resume point %d (%d.%d, %d) is not a block end", i, rp.COff, rp.BitOffset, rp.UOff)
		}
		window, err := rp.Window()
		if err != nil {
			t.Fatalf("resume point %d: %v", i, err)
		}
		if want := min(int64(layerz.MaxWindow), rp.UOff); int64(len(window)) > want || rp.MemberStart == 0 && int64(len(window)) != want {
			t.Errorf("resume point %d: window of %d bytes", i, len(window))
		}
		if len(rp.ZWindow) > len(window)+16 { // stored blocks for random data
			t.Errorf("resume point %d: window of %d bytes stored in %d", i, len(window), len(rp.ZWindow))
		}
		if !bytes.Equal(window, u[rp.UOff-int64(len(window)):rp.UOff]) {
			t.Errorf("resume point %d: window is not the output before UOff", i)
		}
		rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), rp)
		if err != nil {
			t.Fatalf("layerz.OpenAt(%d): %v", i, err)
		}
		n := min(int64(len(u))-rp.UOff, 256<<10)
		toEnd := i%7 == 0 || i == len(res.ResumePoints)-1
		if toEnd {
			n = int64(len(u)) - rp.UOff
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(rc, got); err != nil {
			t.Fatalf("resume point %d (COff %d bit %d UOff %d): reading: %v", i, rp.COff, rp.BitOffset, rp.UOff, err)
		}
		if !bytes.Equal(got, u[rp.UOff:rp.UOff+n]) {
			t.Fatalf("resume point %d (COff %d bit %d UOff %d): output differs from the stream", i, rp.COff, rp.BitOffset, rp.UOff)
		}
		if toEnd {
			// The rest of the blob (trailers, further members) is checked.
			if k, err := rc.Read(make([]byte, 1)); k != 0 || err != io.EOF {
				t.Fatalf("resume point %d: after the end: %d, %v", i, k, err)
			}
		}
		rc.Close()
	}
	// The zero resume point reads the whole stream, verifying every member.
	rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), layerz.ResumePoint{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(all, u) {
		t.Fatalf("layerz.OpenAt(zero): %d bytes, %v", len(all), err)
	}
}

func TestResumeEveryPoint(t *testing.T) {
	t.Parallel()
	const span = 64 << 10
	u := writeTar(t, genFiles(2, scaled(5<<20)), tar.FormatPAX, nil)
	for _, w := range gzipWriters {
		t.Run(w.name, func(t *testing.T) {
			blob := w.compress(t, u)
			opts := Options{MediaType: layerz.MediaTypeOCILayerGzip, SpanBytes: span}
			ends, drift := recordEnds(&opts)
			res := mustIndex(t, blob, opts)
			t.Logf("%d block ends, %d resume points, max drift corrected %d", len(*ends), len(res.ResumePoints), *drift)
			checkResumeEverywhere(t, blob, u, res, *ends, span)
		})
	}
	t.Run("umoci", func(t *testing.T) {
		files := genFiles(3, scaled(4<<20))
		blob, mt := umociLayer(t, files)
		opts := Options{MediaType: mt, SpanBytes: span}
		ends, drift := recordEnds(&opts)
		res := mustIndex(t, blob, opts)
		t.Logf("umoci layer %d bytes: %d block ends, %d resume points, max drift corrected %d", len(blob), len(*ends), len(res.ResumePoints), *drift)
		if *drift == 0 {
			t.Error("the umoci layer did not exercise the CompressedOffset drift (no stored blocks?)")
		}
		u := decompress(t, blob, layerz.Gzip)
		checkResumeEverywhere(t, blob, u, res, *ends, span)
		// The inserted files are where the entries say.
		byPath := map[string]Entry{}
		for _, e := range res.Entries {
			byPath[e.Path] = e
		}
		for _, f := range files {
			e, ok := byPath["/data/"+f.hdr.Name]
			if !ok || !bytes.Equal(u[e.Offset:e.Offset+e.Size], f.content) {
				t.Fatalf("umoci layer: %s missing or wrong", f.hdr.Name)
			}
		}
	})
}

func TestOpenAtErrors(t *testing.T) {
	u := writeTar(t, genFiles(4, 1<<20), tar.FormatPAX, nil)
	blob := gzipGo(t, u)
	res := mustIndex(t, blob, Options{SpanBytes: 64 << 10})
	if len(res.ResumePoints) < 3 {
		t.Fatal("too few resume points")
	}
	rp := res.ResumePoints[1]
	var wc layerz.WindowCompressor
	for name, bad := range map[string]layerz.ResumePoint{
		"offset past the end": {COff: int64(len(blob)) + 1, UOff: 5},
		"negative offset":     {COff: -1, UOff: 5},
		"bit offset 8":        {COff: rp.COff, BitOffset: 8, UOff: rp.UOff, ZWindow: rp.ZWindow},
		"window too long":     {COff: rp.COff, UOff: rp.UOff, ZWindow: wc.Compress(make([]byte, layerz.MaxWindow+1))},
		"window not deflate":  {COff: rp.COff, UOff: rp.UOff, ZWindow: []byte{0xff, 0xff, 0xff}},
		"window truncated":    {COff: rp.COff, UOff: rp.UOff, ZWindow: rp.ZWindow[:len(rp.ZWindow)/2]},
		"member after COff":   {COff: rp.COff, UOff: rp.UOff, ZWindow: rp.ZWindow, MemberStart: rp.COff + 1},
	} {
		if _, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// A wrong bit offset or byte offset gives an error or different bytes.
	for _, d := range []struct {
		dc  int64
		bit int
	}{{0, 1}, {0, -1}, {1, 0}, {-1, 0}, {3, 0}} {
		bad := rp
		bad.COff += d.dc
		b := int(bad.BitOffset) + d.bit
		if b < 0 || b > 7 {
			continue
		}
		bad.BitOffset = uint8(b)
		rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), bad)
		if err != nil {
			continue
		}
		got, err := io.ReadAll(rc)
		if err == nil && bytes.Equal(got, u[rp.UOff:]) {
			t.Errorf("resume at a wrong position %+v produced the right stream", d)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("resume at a wrong position %+v: %v, want ErrCorrupt", d, err)
		}
	}
	// A wrong window gives wrong bytes (checked by the caller).
	bad := rp
	window, err := rp.Window()
	if err != nil {
		t.Fatal(err)
	}
	bad.ZWindow = wc.Compress(bytes.Repeat([]byte{'z'}, len(window)))
	if rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob)), bad); err == nil {
		got, _ := io.ReadAll(rc)
		if bytes.Equal(got, u[rp.UOff:]) {
			t.Error("a wrong window produced the right stream")
		}
	}
	// A truncated blob is ErrCorrupt.
	rc, err := layerz.OpenAt(bytes.NewReader(blob), int64(len(blob))-5, rp)
	if err == nil {
		_, err = io.ReadAll(rc)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated blob: %v, want ErrCorrupt", err)
	}
}
