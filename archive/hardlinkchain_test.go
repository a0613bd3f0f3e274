package archive

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ociclip/ociclip/tarindex"
)

// TestHardlinkChain: a layer of n hard links each naming the next one
// (hostile input: 100k such headers gzip to about 1 MB) resolves in time
// linear in n — it was quadratic, 49 s for 20k links — and every name gets
// the file's attributes and the full link count.
func TestHardlinkChain(t *testing.T) {
	const n = 100_000
	chain := func(forward bool) []tarindex.Entry {
		var es []tarindex.Entry
		for i := 0; i < n; i++ {
			es = append(es, tarindex.Entry{Path: fmt.Sprintf("/l%d", i), Kind: tarindex.KindHardlink, Linkname: fmt.Sprintf("/l%d", i+1)})
		}
		f := tarindex.Entry{Path: fmt.Sprintf("/l%d", n), Kind: tarindex.KindFile, Mode: 0o640, Size: 7, Offset: 512}
		if forward {
			return append(es, f)
		}
		return append([]tarindex.Entry{f}, es...)
	}
	for _, forward := range []bool{true, false} {
		start := time.Now()
		nodes, st, err := Merge([]LayerEntries{{Digest: "sha256:x", Entries: chain(forward)}}, time.Time{})
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("forward=%v: %d chained links took %v", forward, n, d)
		}
		if err != nil || len(nodes) != n+2 || st.HardLinks != n {
			t.Fatalf("forward=%v: %d nodes, %+v, %v", forward, len(nodes), st, err)
		}
		file := nodes[len(nodes)-1]
		for _, nd := range nodes[1:] {
			if nd.Attr.Ino != file.Attr.Ino || nd.Attr.Nlink != n+1 || nd.Remote == nil || *nd.Remote != *file.Remote {
				t.Fatalf("forward=%v: %s: ino %d nlink %d remote %+v; file %s ino %d remote %+v", forward, nd.Path, nd.Attr.Ino, nd.Attr.Nlink, nd.Remote, file.Path, file.Attr.Ino, file.Remote)
			}
		}
	}
	// A cycle is still one.
	es := []tarindex.Entry{
		{Path: "/a", Kind: tarindex.KindHardlink, Linkname: "/b"},
		{Path: "/b", Kind: tarindex.KindHardlink, Linkname: "/c"},
		{Path: "/c", Kind: tarindex.KindHardlink, Linkname: "/a"},
	}
	if _, _, err := Merge([]LayerEntries{{Digest: "sha256:x", Entries: es}}, time.Time{}); !errors.Is(err, ErrHardlink) {
		t.Errorf("cycle: %v", err)
	}
}
