package ociread

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testimage"
)

// A platform asked for is checked against the config of a single selected
// manifest (it was silently ignored): a mismatch wraps ErrPlatformNotFound
// and names both platforms; a match, and no platform at all, resolve.
func TestSingleManifestPlatformChecked(t *testing.T) {
	dir := t.TempDir()
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: &testimage.Image{
		Config: testimage.ConfigOptions{OS: "linux", Architecture: "arm", Variant: "v7"},
		Layers: []testimage.Layer{{Entries: []testimage.Entry{{Name: "a", Body: []byte("a")}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		plat string // "" = no platform asked
		ok   bool
	}{
		{"", true},
		{"linux/arm", true},
		{"linux/arm/v7", true},
		{"linux/arm/v6", false},
		{"linux/arm64", false},
		{"linux/amd64", false},
		{"windows/arm", false},
	} {
		var sel Select
		sel.Ref = "v1"
		if tc.plat != "" {
			p, err := ParsePlatform(tc.plat)
			if err != nil {
				t.Fatal(err)
			}
			sel.Platform = &p
		}
		img, err := l.Resolve(context.Background(), sel)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q: %v", tc.plat, err)
		case !tc.ok && (!errors.Is(err, ErrPlatformNotFound) || !strings.Contains(err.Error(), "linux/arm/v7") || !strings.Contains(err.Error(), tc.plat)):
			t.Errorf("%q: %v (image %v), want ErrPlatformNotFound naming %s and linux/arm/v7", tc.plat, err, img != nil, tc.plat)
		}
	}
}
