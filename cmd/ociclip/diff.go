package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
)

const diffUsage = `Usage: ociclip diff A.clip B.clip [--json]

Compare two clip archives node by node: paths added (only in B), removed (only
in A) and changed, with the attributes that changed: type, mode, owner, size,
mtime, nlink, target (of a symlink) and data (layer digest, offset and length
of a file's bytes), then any other field clip reads, by its Go name (such as
Attr.Ino). Also compares the image: manifest digest, registry reference,
layer list, checkpoints, resume points, then every other field of the
storage info (such as ImageMetadata.Name, ImageMetadata.Created).

Exit status: 0 when the archives describe the same image, 1 when they differ,
2 on an error (as diff(1)).
`

// attrChange is one changed attribute of a node or of the image.
type attrChange struct {
	Attr string `json:"attr"`
	A    string `json:"a"`
	B    string `json:"b"`
}

// nodeChange lists the changed attributes of a path present in both.
type nodeChange struct {
	Path    string       `json:"path"`
	Changes []attrChange `json:"changes"`
}

// diffOutput is diff's --json document.
type diffOutput struct {
	A         string       `json:"a"`
	B         string       `json:"b"`
	Identical bool         `json:"identical"`
	Image     []attrChange `json:"image"`
	Added     []string     `json:"added"`
	Removed   []string     `json:"removed"`
	Changed   []nodeChange `json:"changed"`
}

func runDiff(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("diff", diffUsage, stdout)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	if len(pos) != 2 {
		return &exitError{code: 2, err: fmt.Errorf("%w: want A.clip B.clip, got %d arguments", errUsage, len(pos))}
	}
	a, err := archive.ReadFile(pos[0])
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	b, err := archive.ReadFile(pos[1])
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	d := diffArchives(a, b)
	d.A, d.B = pos[0], pos[1]
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		printDiff(stdout, d)
	}
	if !d.Identical {
		return &exitError{code: 1}
	}
	return nil
}

// diffArchives compares two decoded archives.
func diffArchives(a, b *archive.Archive) diffOutput {
	d := diffOutput{Image: []attrChange{}, Added: []string{}, Removed: []string{}, Changed: []nodeChange{}}
	imageAttr := func(name, x, y string) {
		if x != y {
			d.Image = append(d.Image, attrChange{name, x, y})
		}
	}
	manifest := func(x *archive.Archive) string {
		if x.Storage.ImageMetadata != nil {
			return x.Storage.ImageMetadata.Digest
		}
		return ""
	}
	ref := func(x *archive.Archive) string {
		if x.Storage.Repository == "" {
			return ""
		}
		return x.Storage.RegistryURL + "/" + x.Storage.Repository + ":" + x.Storage.Reference
	}
	imageAttr("manifest", manifest(a), manifest(b))
	imageAttr("reference", ref(a), ref(b))
	imageAttr("layers", strings.Join(a.Storage.Layers, ","), strings.Join(b.Storage.Layers, ","))
	imageAttr("checkpoints", checkpoints(a), checkpoints(b))
	imageAttr("resumePoints", resumePoints(a), resumePoints(b))
	imageAttr("storageType", a.StorageType, b.StorageType)
	// Every other field clip reads, by its name in clip's types.
	fieldDiffs(&a.Storage, &b.Storage, imageNamed, func(p, x, y string) { d.Image = append(d.Image, attrChange{p, x, y}) })

	// Nodes are stored sorted by path; walk both in step.
	an, bn := sortedNodes(a.Nodes), sortedNodes(b.Nodes)
	i, j := 0, 0
	for i < len(an) || j < len(bn) {
		switch {
		case j == len(bn) || i < len(an) && an[i].Path < bn[j].Path:
			d.Removed = append(d.Removed, an[i].Path)
			i++
		case i == len(an) || bn[j].Path < an[i].Path:
			d.Added = append(d.Added, bn[j].Path)
			j++
		default:
			if ch := diffNode(an[i], bn[j]); len(ch) > 0 {
				d.Changed = append(d.Changed, nodeChange{Path: an[i].Path, Changes: ch})
			}
			i++
			j++
		}
	}
	d.Identical = len(d.Image) == 0 && len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
	return d
}

// imageNamed are the fields of the storage info that diffArchives compares
// under names of its own (manifest, reference, layers, checkpoints).
var imageNamed = skipSet("ImageMetadata.Digest", "RegistryURL", "Repository", "Reference", "Layers", "GzipIdxByLayer", "ZstdIdxByLayer")

// nodeNamed are the fields of a node that diffNode compares under names of
// its own; Path is what nodes are matched by.
var nodeNamed = skipSet("Path", "NodeType", "Attr.Mode", "Attr.Owner", "Attr.Size", "Attr.Mtime", "Attr.Mtimensec", "Attr.Nlink", "Target", "Remote")

// checkpoints lists, per layer, clip's gzip checkpoints and zstd frames
// (count and last uncompressed offset: a change of spacing shows), then
// a short sha256 of both indexes, so that any other change shows too.
func checkpoints(a *archive.Archive) string {
	var s []string
	for _, l := range a.Storage.Layers {
		n, last := 0, int64(0)
		if g := a.Storage.GzipIdxByLayer[l]; g != nil && len(g.Checkpoints) > 0 {
			n, last = len(g.Checkpoints), g.Checkpoints[len(g.Checkpoints)-1].UOff
		}
		if z := a.Storage.ZstdIdxByLayer[l]; z != nil && len(z.Frames) > 0 {
			n, last = len(z.Frames), z.Frames[len(z.Frames)-1].UOff
		}
		s = append(s, fmt.Sprintf("%d@%d", n, last))
	}
	idx, err := json.Marshal([]any{a.Storage.GzipIdxByLayer, a.Storage.ZstdIdxByLayer})
	if err != nil {
		return strings.Join(s, ",")
	}
	sum := sha256.Sum256(idx)
	return strings.Join(s, ",") + " " + hex.EncodeToString(sum[:6])
}

// resumePoints lists the number of ociclip's resume points per layer, or
// "" when the archive has no extension section.
func resumePoints(a *archive.Archive) string {
	if a.Extension == nil {
		return ""
	}
	var s []string
	for _, l := range a.Extension.Layers {
		s = append(s, strconv.Itoa(len(l.Points)))
	}
	return strings.Join(s, ",")
}

func sortedNodes(ns []*common.ClipNode) []*common.ClipNode {
	if slices.IsSortedFunc(ns, func(x, y *common.ClipNode) int { return strings.Compare(x.Path, y.Path) }) {
		return ns
	}
	c := slices.Clone(ns)
	slices.SortStableFunc(c, func(x, y *common.ClipNode) int { return strings.Compare(x.Path, y.Path) })
	return c
}

// diffNode returns the attributes of x and y (same path) that differ.
func diffNode(x, y *common.ClipNode) []attrChange {
	var ch []attrChange
	add := func(name, a, b string) {
		if a != b {
			ch = append(ch, attrChange{name, a, b})
		}
	}
	add("type", string(x.NodeType), string(y.NodeType))
	add("mode", modeString(x.Attr.Mode), modeString(y.Attr.Mode))
	add("owner", owner(x), owner(y))
	add("size", strconv.FormatUint(x.Attr.Size, 10), strconv.FormatUint(y.Attr.Size, 10))
	add("mtime", mtime(x), mtime(y))
	add("nlink", strconv.FormatUint(uint64(x.Attr.Nlink), 10), strconv.FormatUint(uint64(y.Attr.Nlink), 10))
	add("target", x.Target, y.Target)
	add("data", dataLocation(x), dataLocation(y))
	fieldDiffs(x, y, nodeNamed, add)
	return ch
}

func owner(n *common.ClipNode) string {
	return fmt.Sprintf("%d:%d", n.Attr.Owner.Uid, n.Attr.Owner.Gid)
}

func mtime(n *common.ClipNode) string {
	return time.Unix(int64(n.Attr.Mtime), int64(n.Attr.Mtimensec)).UTC().Format(time.RFC3339Nano)
}

// dataLocation renders where a file's bytes are: LAYER@OFFSET+LENGTH.
func dataLocation(n *common.ClipNode) string {
	if n.Remote == nil {
		return ""
	}
	return fmt.Sprintf("%s@%d+%d", n.Remote.LayerDigest, n.Remote.UOffset, n.Remote.ULength)
}

// printDiff writes the text form: image changes, then one line per path in
// path order ("+" added, "-" removed, "~" changed with its attributes), then
// a count.
func printDiff(w io.Writer, d diffOutput) {
	show := func(attr, v string) string {
		if v == "" {
			return "(none)"
		}
		if attr == "data" || attr == "manifest" {
			if dg, rest, ok := strings.Cut(v, "@"); ok {
				return shortDigest(dg) + "@" + rest
			}
			return shortDigest(v)
		}
		if attr == "layers" {
			var s []string
			for _, l := range strings.Split(v, ",") {
				s = append(s, shortDigest(l))
			}
			return strings.Join(s, ",")
		}
		return v
	}
	for _, c := range d.Image {
		fmt.Fprintf(w, "image %s: %s -> %s\n", c.Attr, show(c.Attr, c.A), show(c.Attr, c.B))
	}
	type line struct{ path, text string }
	var lines []line
	for _, p := range d.Added {
		lines = append(lines, line{p, "+ " + p})
	}
	for _, p := range d.Removed {
		lines = append(lines, line{p, "- " + p})
	}
	for _, c := range d.Changed {
		var parts []string
		for _, a := range c.Changes {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", a.Attr, show(a.Attr, a.A), show(a.Attr, a.B)))
		}
		lines = append(lines, line{c.Path, "~ " + c.Path + ": " + strings.Join(parts, ", ")})
	}
	slices.SortStableFunc(lines, func(x, y line) int { return strings.Compare(x.path, y.path) })
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
	if d.Identical {
		fmt.Fprintln(w, "identical")
		return
	}
	fmt.Fprintf(w, "%d image attributes differ; %d paths added, %d removed, %d changed\n", len(d.Image), len(d.Added), len(d.Removed), len(d.Changed))
}
