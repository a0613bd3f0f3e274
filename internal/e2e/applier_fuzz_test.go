package e2e_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/internal/testimage"
)

// stackSource turns fuzz bytes into choices; past the end every choice is 0.
type stackSource struct{ b []byte }

func (s *stackSource) pick(n int) int {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return int(c) % n
}

// fuzzName builds a path of 1-3 components from a small alphabet with "."
// and "..", absolute, "./"-prefixed or relative, with an optional trailing
// slash where slash allows (tar writers refuse one on a file's name):
// entry names, hard-link and symlink targets.
func (s *stackSource) fuzzName(alphabet []string, slash bool) string {
	n := 1 + s.pick(3)
	comps := make([]string, n)
	for i := range comps {
		comps[i] = alphabet[s.pick(len(alphabet))]
	}
	p := strings.Join(comps, "/")
	switch s.pick(6) {
	case 0:
		p = "/" + p
	case 1:
		p = "./" + p
	case 2:
		if slash {
			p += "/"
		}
	}
	return p
}

var (
	fuzzNames   = []string{"a", "b", "c", "a", "b", "..", "."}
	fuzzTargets = []string{"a", "b", "c", "..", ".", "nowhere"}
)

// decodeStack builds 1-3 layers of 1-8 entries each: files, directories,
// symlinks (to inside, outside, absolute, dangling targets), hard links,
// whiteouts and opaque markers. Each layer lists its whiteouts first: an
// applier that applies them in tar order (containerd) then agrees with the
// image-spec rule (whiteouts hide lower layers only) that ociclip follows;
// TestAppliersAgree records the other order.
func decodeStack(data []byte) [][]testimage.Entry {
	s := &stackSource{b: data}
	layers := make([][]testimage.Entry, 1+s.pick(3))
	for li := range layers {
		var wh, rest []testimage.Entry
		for i := 1 + s.pick(8); i > 0; i-- {
			switch s.pick(9) {
			case 0, 1:
				modes := []int64{0o644, 0o755, 0o600, 0o4755}
				rest = append(rest, testimage.Entry{Name: s.fuzzName(fuzzNames, false), Mode: modes[s.pick(len(modes))], Body: fmt.Appendf(nil, "%d.%d", li, i)})
			case 2, 3:
				modes := []int64{0o755, 0o700, 0o1777}
				rest = append(rest, testimage.Entry{Name: s.fuzzName(fuzzNames, true), Type: tar.TypeDir, Mode: modes[s.pick(len(modes))]})
			case 4, 5:
				rest = append(rest, testimage.Entry{Name: s.fuzzName(fuzzNames, false), Type: tar.TypeSymlink, Linkname: s.fuzzName(fuzzTargets, true)})
			case 6:
				rest = append(rest, testimage.Entry{Name: s.fuzzName(fuzzNames, false), Type: tar.TypeLink, Linkname: s.fuzzName(fuzzNames, true)})
			case 7:
				dir := ""
				if s.pick(2) == 1 {
					dir = s.fuzzName(fuzzNames, false) + "/"
				}
				wh = append(wh, testimage.Entry{Name: dir + ".wh." + []string{"a", "b", "c"}[s.pick(3)], ZeroMode: true})
			case 8:
				wh = append(wh, testimage.Entry{Name: s.fuzzName(fuzzNames, false) + "/.wh..wh..opq", ZeroMode: true})
			}
		}
		layers[li] = append(wh, rest...)
	}
	return layers
}

// describeStack renders layers for a failure message.
func describeStack(layers [][]testimage.Entry) string {
	var b strings.Builder
	for i, es := range layers {
		fmt.Fprintf(&b, "\n  layer %d:", i+1)
		for _, e := range es {
			switch e.Type {
			case tar.TypeDir:
				fmt.Fprintf(&b, "\n    dir  %q %#o", e.Name, e.Mode)
			case tar.TypeSymlink:
				fmt.Fprintf(&b, "\n    sym  %q -> %q", e.Name, e.Linkname)
			case tar.TypeLink:
				fmt.Fprintf(&b, "\n    link %q -> %q", e.Name, e.Linkname)
			default:
				fmt.Fprintf(&b, "\n    file %q %#o %q", e.Name, e.Mode, e.Body)
			}
		}
	}
	return b.String()
}

// dropWhiteoutParents removes from want (containerd's tree) the
// directories that only containerd has and below which it has only
// directories: containerd creates the missing parents of a whiteout or
// opaque marker before it applies it; ociclip (and umoci) create nothing
// for a whiteout (recorded in TestAppliersAgree and docs/COMPAT.md).
func dropWhiteoutParents(layers [][]testimage.Entry, got, want map[string]fsEntry) {
	hasWhiteout := false
	for _, es := range layers {
		for _, e := range es {
			hasWhiteout = hasWhiteout || strings.HasPrefix(filepath.Base(e.Name), ".wh.")
		}
	}
	if !hasWhiteout {
		return
	}
	var drop []string
	for p, e := range want {
		if _, ok := got[p]; ok || e.Type != "dir" || p == "/" {
			continue
		}
		onlyDirs := true
		for q, f := range want {
			if strings.HasPrefix(q, p+"/") && f.Type != "dir" {
				onlyDirs = false
				break
			}
		}
		if onlyDirs {
			drop = append(drop, p)
		}
	}
	for _, p := range drop {
		delete(want, p)
	}
}

// FuzzAppliers generates small layer stacks and checks ociclip's merged
// tree against containerd's applier: when containerd applies a stack,
// ociclip must accept it and give the same tree (paths, types, permission
// bits, owners, sizes, symlink targets, content read through ociclip's
// reader, link counts and identity), apart from dropWhiteoutParents. When
// containerd refuses a stack, ociclip may accept it (it is more lenient:
// hard links to later entries, files in the way of parents) or refuse it.
// Needs root (skips without, fails with CI=true).
func FuzzAppliers(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0},
		{1, 3, 4, 0, 0, 1, 6, 2, 1, 0, 0},
		{2, 7, 2, 1, 1, 0, 4, 0, 3, 1, 5, 0, 1, 6, 1, 3, 0, 2, 8, 0, 0, 4, 2},
		[]byte("symlinks, hard links, whiteouts and .. through three layers"),
		{0, 5, 4, 0, 0, 2, 3, 4, 2, 0, 0, 6, 2, 0, 1, 0, 0, 1, 1},
		{2, 4, 2, 0, 1, 0, 1, 4, 0, 1, 3, 1, 0, 0, 4, 7, 1, 0, 2, 1, 0, 1, 0, 6, 0, 0, 1, 1, 0, 0, 8, 0, 0, 0},
	} {
		f.Add(seed)
	}
	cd := startContainerd(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		layers := decodeStack(data)
		work := t.TempDir()
		img, err := writeApplierImage(work, layers, testimage.None)
		if err != nil {
			t.Fatalf("writing the layout: %v%s", err, describeStack(layers))
		}
		got, oerr := ociclipTree(work, img.dir)
		if errors.Is(oerr, errReadBack) {
			t.Fatalf("ociclip: %v%s", oerr, describeStack(layers))
		}
		root, refused := cd.applyIn(t, work, img.tars)
		if refused != nil {
			return
		}
		if oerr != nil {
			t.Fatalf("ociclip refuses layers containerd applies: %v%s", oerr, describeStack(layers))
		}
		want := walkTree(t, root)
		dropWhiteoutParents(layers, got, want)
		if d := applierDiffs("containerd", got, want); len(d) > 0 {
			t.Fatalf("ociclip differs from containerd:\n  %s%s%s", strings.Join(d, "\n  "), describeStack(layers), describeTrees("containerd", got, want))
		}
	})
}

// TestFuzzStackDecoder: the decoder reaches every kind of entry, and the
// whiteouts of a layer come first.
func TestFuzzStackDecoder(t *testing.T) {
	kinds := map[string]bool{}
	for seed := 0; seed < 2000; seed++ {
		data := make([]byte, 64)
		for i := range data {
			data[i] = byte((seed*131 + i*i*7 + i) % 251)
		}
		for _, es := range decodeStack(data) {
			seenOther := false
			for _, e := range es {
				k := string(e.Type)
				if strings.HasPrefix(filepath.Base(e.Name), ".wh.") {
					k = "whiteout"
					if strings.HasSuffix(e.Name, ".wh..wh..opq") {
						k = "opaque"
					}
					if seenOther {
						t.Fatalf("whiteout %q after other entries: %s", e.Name, describeStack([][]testimage.Entry{es}))
					}
				} else {
					seenOther = true
				}
				kinds[k] = true
			}
		}
	}
	for _, k := range []string{"\x00", string(tar.TypeDir), string(tar.TypeSymlink), string(tar.TypeLink), "whiteout", "opaque"} {
		if !kinds[k] {
			t.Errorf("the decoder never makes a %q entry (kinds %v)", k, slices.Sorted(maps.Keys(kinds)))
		}
	}
}
