package layerz

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestWindowRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	text := bytes.Repeat([]byte("import os, sys\nreturn value\n"), MaxWindow/28+1)[:MaxWindow]
	random := make([]byte, MaxWindow)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var c WindowCompressor
	for name, w := range map[string][]byte{"text": text, "random": random, "short": text[:100], "one": {7}} {
		z := c.Compress(w)
		got, err := ResumePoint{ZWindow: z}.Window()
		if err != nil || !bytes.Equal(got, w) {
			t.Errorf("%s: %d bytes back, %v", name, len(got), err)
		}
		if name == "text" && len(z) > len(w)/10 {
			t.Errorf("text window of %d bytes compressed to %d", len(w), len(z))
		}
	}
	if z := c.Compress(nil); z != nil {
		t.Errorf("empty window compressed to %d bytes", len(z))
	}
	if w, err := (ResumePoint{}).Window(); w != nil || err != nil {
		t.Errorf("no window: %v, %v", w, err)
	}
	z := c.Compress(text)
	for name, bad := range map[string][]byte{
		"too long":  c.Compress(append(bytes.Clone(text), 'x')),
		"truncated": z[:len(z)/2],
		"garbage":   {0xff, 0xfe, 0xfd, 0xfc},
	} {
		if _, err := (ResumePoint{ZWindow: bad}).Window(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
