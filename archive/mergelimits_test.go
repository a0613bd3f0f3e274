package archive

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ociclip/ociclip/tarindex"
)

// TestMergeLimits: the merged tree is bounded even when it is much larger
// than the entries: synthesized parents count against MaxNodes, and paths
// that grow by resolving symlinks in parents against MaxPathLen.
func TestMergeLimits(t *testing.T) {
	file := func(p string) tarindex.Entry { return tarindex.Entry{Path: p, Kind: tarindex.KindFile, Mode: 0o644} }
	sym := func(p, target string) tarindex.Entry {
		return tarindex.Entry{Path: p, Kind: tarindex.KindSymlink, Mode: 0o777, Linkname: target}
	}
	layer := func(es ...tarindex.Entry) []LayerEntries { return []LayerEntries{{Digest: "sha256:l", Entries: es}} }

	// 20 entries 1000 levels deep: 20,000 synthesized directories.
	var deep []tarindex.Entry
	for i := 0; i < 20; i++ {
		deep = append(deep, file(fmt.Sprintf("/d%d%s/f", i, strings.Repeat("/a", 999))))
	}
	if _, _, err := MergeWithLimits(layer(deep...), time.Time{}, MergeLimits{MaxNodes: 5000}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxNodes 5000") {
		t.Errorf("deep parents, MaxNodes 5000: %v", err)
	}
	nodes, st, err := MergeWithLimits(layer(deep...), time.Time{}, MergeLimits{MaxNodes: 20_100})
	if err != nil || len(nodes) != 20_021 || st.SynthesizedDirs != 20_000 {
		t.Errorf("deep parents under the limit: %d nodes, %+v, %v", len(nodes), st, err)
	}

	// Symlinks "l" -> 250 x's, each placed through the previous ones: the
	// entry "l/l/.../f" (62 bytes) resolves to a 7532-byte path.
	long := strings.Repeat("x", 250)
	var es []tarindex.Entry
	for k := 0; k < 30; k++ {
		es = append(es, sym("/"+strings.Repeat("l/", k)+"l", long))
	}
	es = append(es, file("/"+strings.Repeat("l/", 30)+"f"))
	if _, _, err := MergeWithLimits(layer(es...), time.Time{}, MergeLimits{MaxPathLen: 300}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxPathLen 300") {
		t.Errorf("symlinked parents, MaxPathLen 300: %v", err)
	}
	if _, _, err := Merge(layer(es...), time.Time{}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxPathLen 4096") {
		t.Errorf("symlinked parents, default limits: %v", err)
	}
	nodes, _, err = MergeWithLimits(layer(es...), time.Time{}, MergeLimits{MaxPathLen: 8000})
	want := "/" + strings.Repeat(long+"/", 30) + "f"
	found := false
	for _, n := range nodes {
		found = found || n.Path == want
	}
	if err != nil || !found {
		t.Errorf("symlinked parents under the limit: no node of %d bytes (%v)", len(want), err)
	}
}

// TestMergeSymlinkWalkBounded: symlinks in parent paths whose targets go
// down and back up ("d/../d/../...") cannot make each entry walk tens of
// thousands of components: 39 chained 4 KB targets cost 6.8 ms per entry
// (2000 entries: 13.5 s). The walk is capped at MaxPathLen components.
func TestMergeSymlinkWalkBounded(t *testing.T) {
	es := []tarindex.Entry{{Path: "/d", Kind: tarindex.KindDir, Mode: 0o755}}
	for k := 0; k < 39; k++ {
		es = append(es, tarindex.Entry{Path: fmt.Sprintf("/s%d", k), Kind: tarindex.KindSymlink, Linkname: strings.Repeat("d/../", 800) + fmt.Sprintf("s%d", k+1)})
	}
	es = append(es, tarindex.Entry{Path: "/s39", Kind: tarindex.KindSymlink, Linkname: "d"})
	for i := 0; i < 2000; i++ {
		es = append(es, tarindex.Entry{Path: fmt.Sprintf("/s0/f%d", i), Kind: tarindex.KindFile})
	}
	start := time.Now()
	_, _, err := Merge([]LayerEntries{{Digest: "sha256:x", Entries: es}}, time.Time{})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxPathLen 4096") {
		t.Errorf("err = %v, want ErrLimit naming MaxPathLen", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// Ordinary symlinks in parents still resolve.
	es = []tarindex.Entry{
		{Path: "/usr/lib", Kind: tarindex.KindDir, Mode: 0o755},
		{Path: "/lib", Kind: tarindex.KindSymlink, Linkname: "usr/lib"},
		{Path: "/lib64", Kind: tarindex.KindSymlink, Linkname: "/lib"},
		{Path: "/lib64/x/z", Kind: tarindex.KindFile},
	}
	nodes, _, err := Merge([]LayerEntries{{Digest: "sha256:x", Entries: es}}, time.Time{})
	found := false
	for _, n := range nodes {
		found = found || n.Path == "/usr/lib/x/z"
	}
	if err != nil || !found {
		t.Errorf("/lib64/x/z: %v, found %v", err, found)
	}
}
