package archive

import (
	"errors"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/tarindex"
)

// Merge errors name the layer as progress lines and indexing errors do:
// "layer 2/2 sha256:…" (it said "layer 2 (sha256:…)").
func TestMergeErrorNamesLayerOneWay(t *testing.T) {
	_, _, err := Merge([]LayerEntries{
		{Digest: "sha256:aaaa", Entries: []tarindex.Entry{file("/a", 0, 1)}},
		{Digest: "sha256:bbbb", Entries: []tarindex.Entry{hardlink("/b", "/nope")}},
	}, t0)
	if !errors.Is(err, ErrHardlink) || !strings.HasPrefix(err.Error(), "layer 2/2 sha256:bbbb: ") {
		t.Errorf("err = %v, want ErrHardlink starting with %q", err, LayerName(2, 2, "sha256:bbbb")+": ")
	}
}
