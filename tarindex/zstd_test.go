package tarindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ociclip/ociclip/layerz"
	"github.com/opencontainers/go-digest"
)

// zstdChunks compresses b in pieces of step bytes, one frame each, with enc.
func zstdChunks(b []byte, step int, enc func(dst, src []byte) []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i += step {
		out = enc(out, b[i:min(len(b), i+step)])
	}
	return out
}

// zstdStream writes b through the streaming encoder: no content size in the
// frame header, a window descriptor instead.
func zstdStream(dst, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	w.Write(b)
	w.Close()
	return append(dst, buf.Bytes()...)
}

func TestZstdFrames(t *testing.T) {
	t.Parallel()
	files := genFiles(9, scaled(3<<20))
	// 300 KiB of one byte: RLE blocks.
	files = append(files, tfile{hdr: tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0644, Size: 300 << 10}, content: make([]byte, 300<<10)})
	u := writeTar(t, files, tar.FormatPAX, nil)
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	defer enc.Close()
	encodeAll := func(dst, src []byte) []byte { return enc.EncodeAll(src, dst) }
	cases := []struct {
		name   string
		blob   []byte
		frames int // expected data frames, 0: don't check
	}{
		{"single frame", enc.EncodeAll(u, nil), 1},
		{"stream encoder", zstdStream(nil, u), 1},
		{"frames of 256 KiB", zstdChunks(u, 256<<10, encodeAll), (len(u) + 256<<10 - 1) / (256 << 10)},
		{"streamed frames of 1 MiB with skippable frames", append(skippable(0), zstdChunks(u, 1<<20, func(dst, src []byte) []byte {
			return append(zstdStream(dst, src), skippable(17)...)
		})...), (len(u) + 1<<20 - 1) / (1 << 20)},
		{"zstd CLI", gzipExec("zstd", "-c", "-q", "-3")(t, u), 1},
		{"zstd CLI frames", zstdChunks(u, 700<<10, func(dst, src []byte) []byte {
			return append(dst, gzipExec("zstd", "-c", "-q", "--no-check", "-19")(t, src)...)
		}), (len(u) + 700<<10 - 1) / (700 << 10)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := mustIndex(t, c.blob, Options{MediaType: layerz.MediaTypeOCILayerZstd})
			if res.DiffID != digest.FromBytes(u) || res.UncompressedSize != int64(len(u)) || res.CompressedSize != int64(len(c.blob)) {
				t.Fatalf("DiffID %s sizes %d %d", res.DiffID, res.UncompressedSize, res.CompressedSize)
			}
			if c.frames > 0 && len(res.ZstdFrames) != c.frames {
				t.Errorf("%d frames, want %d", len(res.ZstdFrames), c.frames)
			}
			checkFrames(t, c.blob, u, res.ZstdFrames)
			for _, e := range res.Entries {
				if e.Kind == KindFile && e.Path == "/zeros" && !bytes.Equal(u[e.Offset:e.Offset+e.Size], files[len(files)-1].content) {
					t.Error("/zeros content")
				}
			}
		})
	}
}

// checkFrames checks that the frames tile the uncompressed stream, lie in
// increasing order in the blob, and that each decodes alone to its bytes.
func checkFrames(t *testing.T, blob, u []byte, frames []layerz.ZstdFrame) {
	t.Helper()
	var uoff, coff int64
	for i, f := range frames {
		if f.UOff != uoff || f.COff < coff || f.CLen <= 0 || f.COff+f.CLen > int64(len(blob)) {
			t.Fatalf("frame %d %+v after uoff %d coff %d", i, f, uoff, coff)
		}
		if c, ok := layerz.Sniff(blob[f.COff : f.COff+4]); !ok || c != layerz.Zstd {
			t.Errorf("frame %d does not start with the zstd magic", i)
		}
		rc, err := layerz.OpenFrame(bytes.NewReader(blob), f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, u[f.UOff:f.UOff+f.ULen]) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
		if err := rc.Close(); err != nil {
			t.Error(err)
		}
		uoff, coff = f.UOff+f.ULen, f.COff+f.CLen
	}
	if uoff != int64(len(u)) {
		t.Errorf("frames cover %d of %d bytes", uoff, len(u))
	}
}

func TestOpenFrameErrors(t *testing.T) {
	u := writeTar(t, genFiles(10, 500<<10), tar.FormatPAX, nil)
	blob := zstdMulti(t, u)
	res := mustIndex(t, blob, Options{})
	if len(res.ZstdFrames) < 3 {
		t.Fatalf("%d frames", len(res.ZstdFrames))
	}
	f := res.ZstdFrames[1]
	for name, bad := range map[string]layerz.ZstdFrame{
		"short ULen":   {COff: f.COff, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen - 1},
		"long ULen":    {COff: f.COff, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen + 1},
		"short CLen":   {COff: f.COff, CLen: f.CLen - 10, UOff: f.UOff, ULen: f.ULen},
		"wrong COff":   {COff: f.COff + 1, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen},
		"past the end": {COff: int64(len(blob)) - 3, CLen: 100, UOff: f.UOff, ULen: f.ULen},
		"zero CLen":    {COff: f.COff, UOff: f.UOff, ULen: f.ULen},
		"negative":     {COff: -1, CLen: f.CLen, UOff: f.UOff, ULen: f.ULen},
	} {
		rc, err := layerz.OpenFrame(bytes.NewReader(blob), bad)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
