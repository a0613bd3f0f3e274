package archive

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

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
// thousands of components (39 chained 4 KB targets cost 6.8 ms per entry
// when each was walked: 2000 entries took 13.5 s). containerd's rootPath
// cleans each target lexically, so they resolve at once, to /d; and a
// resolution that needs more than 4 * MaxPathLen directory lookups is
// ErrLimit.
func TestMergeSymlinkWalkBounded(t *testing.T) {
	es := []tarindex.Entry{{Path: "/d", Kind: tarindex.KindDir, Mode: 0o755}}
	for k := 0; k < 39; k++ {
		es = append(es, tarindex.Entry{Path: fmt.Sprintf("/s%d", k), Kind: tarindex.KindSymlink, Linkname: strings.Repeat("d/../", 800) + fmt.Sprintf("s%d", k+1)})
	}
	es = append(es, tarindex.Entry{Path: "/s39", Kind: tarindex.KindSymlink, Linkname: "d"})
	for i := 0; i < 2000; i++ {
		es = append(es, tarindex.Entry{Path: fmt.Sprintf("/s0/f%d", i), Kind: tarindex.KindFile})
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	nodes, _, err := Merge([]LayerEntries{{Digest: "sha256:x", Entries: es}}, time.Time{})
	runtime.ReadMemStats(&after)
	if err != nil || len(nodes) != 2+40+2000 || nodes[len(nodes)-1].Path != "/s9" {
		t.Errorf("chained d/../ targets: %d nodes, %v", len(nodes), err)
	}
	for _, n := range nodes {
		if n.NodeType == common.FileNode && !strings.HasPrefix(n.Path, "/d/f") {
			t.Errorf("file at %s, want under /d", n.Path)
		}
	}
	// The work, measured by what it allocates rather than by the clock
	// (a loaded CI machine took 6 s for what takes 2 s alone): 1.1 GiB
	// today; walking each entry's 32,000 components took 6.5 times as long.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<30 {
		t.Errorf("merging allocated %d MiB", alloc>>20)
	} else {
		t.Logf("merging allocated %d MiB", alloc>>20)
	}
	// 100 symlinks, each 5 directories deep, chained: 500 lookups, over
	// the budget of MaxPathLen 64 (256), under the default one.
	chain := func() []tarindex.Entry {
		var es []tarindex.Entry
		for k := 0; k < 100; k++ {
			es = append(es, tarindex.Entry{Path: fmt.Sprintf("/a%d/b/c/d/e/l", k), Kind: tarindex.KindSymlink, Linkname: fmt.Sprintf("/a%d/b/c/d/e/l", k+1)})
		}
		return append(es, tarindex.Entry{Path: "/a100/b/c/d/e/l", Kind: tarindex.KindDir, Mode: 0o755}, tarindex.Entry{Path: "/a0/b/c/d/e/l/f", Kind: tarindex.KindFile})
	}
	if _, _, err := MergeWithLimits([]LayerEntries{{Digest: "sha256:x", Entries: chain()}}, time.Time{}, MergeLimits{MaxPathLen: 64}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxPathLen 64") {
		t.Errorf("chain of deep symlinks, MaxPathLen 64: err = %v, want ErrLimit naming MaxPathLen", err)
	}
	nodes, _, err = Merge([]LayerEntries{{Digest: "sha256:x", Entries: chain()}}, time.Time{})
	found := false
	for _, n := range nodes {
		found = found || n.Path == "/a100/b/c/d/e/l/f"
	}
	if err != nil || !found {
		t.Errorf("chain of deep symlinks: %v, found %v", err, found)
	}
	// Ordinary symlinks in parents still resolve.
	es = []tarindex.Entry{
		{Path: "/usr/lib", Kind: tarindex.KindDir, Mode: 0o755},
		{Path: "/lib", Kind: tarindex.KindSymlink, Linkname: "usr/lib"},
		{Path: "/lib64", Kind: tarindex.KindSymlink, Linkname: "/lib"},
		{Path: "/lib64/x/z", Kind: tarindex.KindFile},
	}
	nodes, _, err = Merge([]LayerEntries{{Digest: "sha256:x", Entries: es}}, time.Time{})
	found = false
	for _, n := range nodes {
		found = found || n.Path == "/usr/lib/x/z"
	}
	if err != nil || !found {
		t.Errorf("/lib64/x/z: %v, found %v", err, found)
	}
}
