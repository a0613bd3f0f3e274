package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ociclip/ociclip/archive/internal/detgob"
	"github.com/ociclip/ociclip/layerz"
)

// section builds an extension section around pieces of a payload.
func section(t *testing.T, clipSum [32]byte, pieces ...[]byte) []byte {
	t.Helper()
	payload := bytes.Join(pieces, nil)
	sum := sha256.Sum256(payload)
	b := append([]byte{}, ExtensionMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, ExtensionVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, sum[:]...)
	b = append(b, clipSum[:]...)
	return append(b, payload...)
}

func TestExtensionWindowsRoundTrip(t *testing.T) {
	var wc layerz.WindowCompressor
	ext := &Extension{Layers: []LayerExtension{
		{Digest: "sha256:a", Compression: "gzip", Points: []layerz.ResumePoint{
			{COff: 10, UOff: 100, ZWindow: wc.Compress(bytes.Repeat([]byte("abc"), 1000))},
			{COff: 20, UOff: 200}, // no window
			{COff: 30, UOff: 300, ZWindow: wc.Compress([]byte("window three"))},
		}},
		{Digest: "sha256:b", Compression: "zstd"},
	}}
	var clipSum [32]byte
	head, payload, err := ext.marshalSection(clipSum)
	if err != nil {
		t.Fatal(err)
	}
	b := append(head, bytes.Join(payload, nil)...)
	got, err := parseExtension(b, clipSum)
	if err != nil {
		t.Fatal(err)
	}
	clear(b) // the windows must not share the section's bytes
	for i, p := range ext.Layers[0].Points {
		if g := got.Layers[0].Points[i]; g.UOff != p.UOff || !bytes.Equal(g.ZWindow, p.ZWindow) {
			t.Errorf("point %d: %+v, want %+v", i, g, p)
		}
	}
	if len(got.Layers) != 2 || len(got.Layers[1].Points) != 0 || got.Layers[1].Compression != "zstd" {
		t.Errorf("layers %+v", got.Layers)
	}
	if ext.Layers[0].Points[0].ZWindow == nil {
		t.Error("encoding changed the extension it encoded")
	}
}

func TestExtensionHostileWindowLengths(t *testing.T) {
	var clipSum [32]byte
	layers := []LayerExtension{{Digest: "sha256:a", Points: []layerz.ResumePoint{{UOff: 1}, {UOff: 2}}}}
	gobOf := func(w extensionWire) []byte {
		g, err := detgob.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	lenOf := func(g []byte) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(len(g))) }
	good := gobOf(extensionWire{Layers: layers, WindowLens: [][]uint32{{3, 4}}})
	if _, err := parseExtension(section(t, clipSum, lenOf(good), good, []byte("1234567")), clipSum); err != nil {
		t.Fatalf("well-formed: %v", err)
	}
	for name, pieces := range map[string][][]byte{
		"windows short":        {lenOf(good), good, []byte("123456")},
		"windows long":         {lenOf(good), good, []byte("12345678")},
		"lengths per point":    {lenOf(gobOf(extensionWire{Layers: layers, WindowLens: [][]uint32{{7}}})), gobOf(extensionWire{Layers: layers, WindowLens: [][]uint32{{7}}}), []byte("1234567")},
		"lengths per layer":    {lenOf(gobOf(extensionWire{Layers: layers})), gobOf(extensionWire{Layers: layers})},
		"huge lengths":         {lenOf(gobOf(extensionWire{Layers: layers, WindowLens: [][]uint32{{1 << 31, 1 << 31}}})), gobOf(extensionWire{Layers: layers, WindowLens: [][]uint32{{1 << 31, 1 << 31}}})},
		"gob length too large": {binary.LittleEndian.AppendUint64(nil, uint64(len(good)+100)), good, []byte("1234567")},
		"no gob length":        {[]byte{1, 2, 3}},
	} {
		if _, err := parseExtension(section(t, clipSum, pieces...), clipSum); !errors.Is(err, ErrCorruptArchive) {
			t.Errorf("%s: %v, want ErrCorruptArchive", name, err)
		}
	}
}
