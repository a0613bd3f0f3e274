package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
)

func defaultArch() string { return runtime.GOARCH }

const inspectUsage = `Usage: ociclip inspect OUT.clip [--json]

Print a clip archive's header, storage info (registry reference, layers, gzip
checkpoints, zstd frames, decompressed hashes, image metadata), node counts
and ociclip's extension section.
`

// inspectLayer is one layer in inspect's output.
type inspectLayer struct {
	Digest           string `json:"digest"`
	MediaType        string `json:"mediaType,omitempty"`
	Size             int64  `json:"size"`
	DecompressedHash string `json:"decompressedHash"`
	GzipCheckpoints  int    `json:"gzipCheckpoints"`
	ZstdFrames       int    `json:"zstdFrames"`
	ResumePoints     int    `json:"resumePoints"`
}

// inspectOutput is inspect's --json document.
type inspectOutput struct {
	File        string                `json:"file"`
	Version     uint8                 `json:"formatVersion"`
	IndexPos    int64                 `json:"indexPos"`
	IndexLength int64                 `json:"indexLength"`
	StoragePos  int64                 `json:"storageInfoPos"`
	StorageLen  int64                 `json:"storageInfoLength"`
	StorageType string                `json:"storageType"`
	RegistryURL string                `json:"registryURL"`
	Repository  string                `json:"repository"`
	Reference   string                `json:"reference"`
	Layers      []inspectLayer        `json:"layers"`
	Nodes       int                   `json:"nodes"`
	Files       int                   `json:"files"`
	Dirs        int                   `json:"dirs"`
	Symlinks    int                   `json:"symlinks"`
	FileBytes   int64                 `json:"fileBytes"` // hard-linked files counted once
	Extension   bool                  `json:"extension"`
	Image       *common.ImageMetadata `json:"image,omitempty"`
}

func runInspect(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", inspectUsage, stdout)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one archive, got %d arguments", errUsage, len(pos))
	}
	a, err := archive.ReadFile(pos[0])
	if err != nil {
		return err
	}
	o := inspectOutput{
		File: pos[0], Version: a.Header.ClipFileFormatVersion,
		IndexPos: a.Header.IndexPos, IndexLength: a.Header.IndexLength,
		StoragePos: a.Header.StorageInfoPos, StorageLen: a.Header.StorageInfoLength,
		StorageType: a.StorageType, Nodes: len(a.Nodes), Extension: a.Extension != nil,
		RegistryURL: a.Storage.RegistryURL, Repository: a.Storage.Repository, Reference: a.Storage.Reference,
		Image: a.Storage.ImageMetadata,
	}
	o.FileBytes = fileBytes(a.Nodes)
	for _, n := range a.Nodes {
		switch n.NodeType {
		case common.FileNode:
			o.Files++
		case common.DirNode:
			o.Dirs++
		case common.SymLinkNode:
			o.Symlinks++
		}
	}
	points := map[string]int{}
	if a.Extension != nil {
		for _, l := range a.Extension.Layers {
			points[l.Digest] = len(l.Points)
		}
	}
	for i, d := range a.Storage.Layers {
		l := inspectLayer{Digest: d, DecompressedHash: a.Storage.DecompressedHashByLayer[d], ResumePoints: points[d]}
		if md := a.Storage.ImageMetadata; md != nil && i < len(md.LayersData) {
			l.MediaType, l.Size = md.LayersData[i].MIMEType, md.LayersData[i].Size
		}
		if g := a.Storage.GzipIdxByLayer[d]; g != nil {
			l.GzipCheckpoints = len(g.Checkpoints)
		}
		if z := a.Storage.ZstdIdxByLayer[d]; z != nil {
			l.ZstdFrames = len(z.Frames)
		}
		o.Layers = append(o.Layers, l)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(o)
	}
	tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", o.File)
	fmt.Fprintf(tw, "format:\tclip v2, version %d, storage %q\n", o.Version, o.StorageType)
	fmt.Fprintf(tw, "index:\t%d bytes at %d\n", o.IndexLength, o.IndexPos)
	fmt.Fprintf(tw, "storage info:\t%d bytes at %d\n", o.StorageLen, o.StoragePos)
	ref := "(none: cannot be mounted from a registry)"
	if o.Repository != "" {
		ref = o.RegistryURL + "/" + o.Repository + ":" + o.Reference
	}
	fmt.Fprintf(tw, "registry ref:\t%s\n", ref)
	fmt.Fprintf(tw, "nodes:\t%d (%d files, %d dirs, %d symlinks), %s of file data\n", o.Nodes, o.Files, o.Dirs, o.Symlinks, humanBytes(o.FileBytes))
	fmt.Fprintf(tw, "extension:\t%v\n", o.Extension)
	if md := o.Image; md != nil {
		name := md.Name
		if name == "" {
			name = "(none: indexed without --storage-ref)"
		}
		fmt.Fprintf(tw, "image:\t%s\n", name)
		fmt.Fprintf(tw, "manifest:\t%s\n", md.Digest)
		plat := md.Os + "/" + md.Architecture
		if md.Variant != "" {
			plat += "/" + md.Variant
		}
		fmt.Fprintf(tw, "platform:\t%s\n", plat)
		fmt.Fprintf(tw, "created:\t%s\n", md.Created.UTC().Format(time.RFC3339))
		if len(md.Entrypoint) > 0 {
			fmt.Fprintf(tw, "entrypoint:\t%q\n", md.Entrypoint)
		}
		if len(md.Cmd) > 0 {
			fmt.Fprintf(tw, "cmd:\t%q\n", md.Cmd)
		}
		if len(md.Env) > 0 {
			fmt.Fprintf(tw, "env:\t%s\n", strings.Join(md.Env, " "))
		}
		keys := make([]string, 0, len(md.Labels))
		for k := range md.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "label:\t%s=%s\n", k, md.Labels[k])
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "layers:\n")
	tw = tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "  #\tDIGEST\tMEDIA TYPE\tSIZE\tGZIP CKPTS\tZSTD FRAMES\tRESUME PTS\tDIFFID\n")
	for i, l := range o.Layers {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", i+1, shortDigest(l.Digest), l.MediaType, humanBytes(l.Size), l.GzipCheckpoints, l.ZstdFrames, l.ResumePoints, shortDigest("sha256:"+l.DecompressedHash))
	}
	return tw.Flush()
}

// fileBytes is the file data of the image: the size of every regular file,
// counting hard-linked files (nodes sharing an inode) once.
func fileBytes(nodes []*common.ClipNode) int64 {
	var total int64
	seen := map[uint64]bool{}
	for _, n := range nodes {
		if n.NodeType != common.FileNode {
			continue
		}
		if n.Attr.Nlink > 1 {
			if seen[n.Attr.Ino] {
				continue
			}
			seen[n.Attr.Ino] = true
		}
		total += int64(n.Attr.Size)
	}
	return total
}

const lsUsage = `Usage: ociclip ls OUT.clip [PATH] [-l] [-R]

List the entries of directory PATH (default /) in a clip archive, or PATH
itself when it is not a directory. -l shows mode, links, owner, size, mtime,
symlink targets and where the data lives (layer@offset).
`

func runLs(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", lsUsage, stdout)
	long := fs.Bool("l", false, "long listing")
	recursive := fs.Bool("R", false, "list subdirectories recursively")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fmt.Errorf("%w: want OUT.clip [PATH]", errUsage)
	}
	a, err := archive.ReadFile(pos[0])
	if err != nil {
		return err
	}
	p := "/"
	if len(pos) == 2 {
		p = path.Clean("/" + pos[1])
	}
	i := sort.Search(len(a.Nodes), func(i int) bool { return a.Nodes[i].Path >= p })
	if i == len(a.Nodes) || a.Nodes[i].Path != p {
		return fmt.Errorf("%s: no such path in %s", p, pos[0])
	}
	node := a.Nodes[i]
	var list []*common.ClipNode
	if node.NodeType != common.DirNode {
		list = []*common.ClipNode{node}
	} else {
		prefix := strings.TrimSuffix(p, "/") + "/"
		for _, n := range a.Nodes {
			if !strings.HasPrefix(n.Path, prefix) {
				continue
			}
			if !*recursive && strings.Contains(n.Path[len(prefix):], "/") {
				continue
			}
			list = append(list, n)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 2, 1, ' ', 0)
	for _, n := range list {
		name := n.Path
		if !*long {
			fmt.Fprintln(tw, name)
			continue
		}
		if n.NodeType == common.SymLinkNode {
			name += " -> " + n.Target
		}
		where := "-"
		if n.Remote != nil {
			where = fmt.Sprintf("%s@%d", shortDigest(n.Remote.LayerDigest), n.Remote.UOffset)
		}
		mt := time.Unix(int64(n.Attr.Mtime), int64(n.Attr.Mtimensec)).UTC().Format("2006-01-02 15:04")
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", modeString(n.Attr.Mode), n.Attr.Nlink, n.Attr.Owner.Uid, n.Attr.Owner.Gid, n.Attr.Size, mt, name, where)
	}
	return tw.Flush()
}

// modeString renders a Unix mode as ls does (drwxr-xr-x, with s/S/t/T).
func modeString(m uint32) string {
	typ := byte('-')
	switch m & 0o170000 {
	case 0o040000:
		typ = 'd'
	case 0o120000:
		typ = 'l'
	}
	const rwx = "rwxrwxrwx"
	b := []byte{typ, '-', '-', '-', '-', '-', '-', '-', '-', '-'}
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(i int, set bool, c byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = c
		} else {
			b[i] = c - 'a' + 'A'
		}
	}
	special(3, m&0o4000 != 0, 's')
	special(6, m&0o2000 != 0, 's')
	special(9, m&0o1000 != 0, 't')
	return string(b)
}
