package fuzz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/layerz"
)

// createLimits are the limits of FuzzCreateFromOCILayout's runs.
var createLimits = ociclip.Limits{MaxJSONBytes: 1 << 16, MaxIndexDepth: 3, MaxEntries: 300, MaxPathLen: 300, MaxUncompressedBytes: 1 << 20}

// Layer compressions of FuzzCreateFromOCILayout, chosen by the selector.
var createComps = []struct {
	c  testimage.Compression
	mt string
}{
	{testimage.Gzip, layerz.MediaTypeOCILayerGzip},
	{testimage.ZstdMulti, layerz.MediaTypeOCILayerZstd},
	{testimage.None, layerz.MediaTypeOCILayer},
	{testimage.GzipMulti, layerz.MediaTypeDockerLayerGzip},
}

// Selector bits of FuzzCreateFromOCILayout above the two compressions.
const (
	createTwice    = 1 << 4 // run twice and compare the outputs
	createExisting = 1 << 5 // an output file exists before the run
)

// Templates of FuzzCreateFromOCILayout: @L1@/@L1S@/@D1@/@MT1@ are the
// digest, size, DiffID and media type of layer 1 (@L2@... of layer 2),
// @C@/@CS@ those of the config, @M@/@MS@ those of the manifest.
const (
	createConfig   = `{"created":"2024-01-02T03:04:05Z","architecture":"amd64","os":"linux","config":{"Env":["A=b"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["@D1@","@D2@"]}}`
	createManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@C@","size":@CS@},"layers":[{"mediaType":"@MT1@","digest":"@L1@","size":@L1S@},{"mediaType":"@MT2@","digest":"@L2@","size":@L2S@}]}`
	createIndex    = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}`
)

func FuzzCreateFromOCILayout(f *testing.F) {
	var umoci [][]byte // the uncompressed layers of testdata/umoci-insert
	for _, b := range smallBlobs(f, 16<<10)["umoci-insert"] {
		if b[0] == 0x1f {
			u, err := testimage.Decompress(b)
			if err != nil {
				f.Fatal(err)
			}
			umoci = append(umoci, u)
		}
	}
	edge := layerSeedTars(f)
	add := func(sel uint8, l1, l2 []byte) {
		f.Add(sel, l1, l2, []byte(createManifest), []byte(createConfig), []byte(createIndex))
	}
	add(0|1<<2|createTwice, umoci[0], umoci[1])
	add(2|3<<2|createExisting, umoci[1], umoci[2])
	add(1|0<<2, edge[0], edge[1])                // busybox-plain's small layers
	add(3|2<<2, edge[2], edge[3])                // links, whiteouts, devices, long names
	add(3|2<<2|createExisting, edge[3], edge[5]) // ".." escapes: fails
	add(0, edge[2], edge[2][:700])               // truncated: fails
	f.Add(uint8(0), umoci[0], umoci[1], []byte(createManifest), []byte(`{"architecture":"amd64","os":"linux","rootfs":{"diff_ids":["@D2@","@D1@"]}}`), []byte(createIndex))

	f.Fuzz(func(t *testing.T, sel uint8, layer1, layer2, manifestT, configT, indexT []byte) {
		if len(layer1)+len(layer2) > 256<<10 || len(manifestT)+len(configT)+len(indexT) > 1<<16 {
			return
		}
		dir := t.TempDir()
		layout, outDir := filepath.Join(dir, "layout"), filepath.Join(dir, "out")
		bdir := filepath.Join(layout, "blobs", "sha256")
		for _, d := range []string{bdir, outDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		put := func(b []byte) (string, string) {
			d := digest.FromBytes(b)
			if err := os.WriteFile(filepath.Join(bdir, d.Encoded()), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return d.String(), fmt.Sprint(len(b))
		}
		tars := map[string][]byte{} // uncompressed layers by blob digest
		var kv []string
		for i, u := range [][]byte{layer1, layer2} {
			c := createComps[int(sel>>(2*i))&3]
			blob, err := testimage.Compress(u, c.c)
			if err != nil {
				t.Fatal(err)
			}
			d, s := put(blob)
			tars[d] = u
			n := fmt.Sprint(i + 1)
			kv = append(kv, "@L"+n+"@", d, "@L"+n+"S@", s, "@D"+n+"@", digest.FromBytes(u).String(), "@MT"+n+"@", c.mt)
		}
		c, cs := put(subst(configT, kv...))
		kv = append(kv, "@C@", c, "@CS@", cs)
		m, ms := put(subst(manifestT, kv...))
		kv = append(kv, "@M@", m, "@MS@", ms)
		if err := os.WriteFile(filepath.Join(layout, "index.json"), subst(indexT, kv...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			t.Fatal(err)
		}

		out := filepath.Join(outDir, "img.clip")
		old := []byte("an older archive")
		if sel&createExisting != 0 {
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		opts := ociclip.Options{LayoutPath: layout, OutputPath: out, SpanBytes: 16 << 10, Limits: createLimits, StorageImageRef: "registry.example/fuzz:1"}
		var res *ociclip.Result
		var err error
		allocBudget(t, 256<<20+64*uint64(len(layer1)+len(layer2)+len(manifestT)+len(configT)+len(indexT)), func() {
			res, err = ociclip.CreateFromOCILayout(context.Background(), opts)
		})
		if err != nil {
			if !wrapsOneOf(err, ociSentinels, tarSentinels, archiveSentinels, rootSentinels) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			names := dirEntries(t, outDir)
			if sel&createExisting == 0 && len(names) != 0 {
				t.Fatalf("failed run (%v) left %v in the output directory", err, names)
			}
			if sel&createExisting != 0 {
				if b, rerr := os.ReadFile(out); rerr != nil || !bytes.Equal(b, old) || len(names) != 1 {
					t.Fatalf("failed run (%v) changed the existing output or left files: %v", err, names)
				}
			}
			return
		}
		if names := dirEntries(t, outDir); len(names) != 1 || names[0] != "img.clip" {
			t.Fatalf("output directory holds %v", names)
		}
		checkCreated(t, out, res, tars, layout)
		if sel&createTwice != 0 {
			opts.OutputPath = filepath.Join(outDir, "again.clip")
			if _, err := ociclip.CreateFromOCILayout(context.Background(), opts); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if !bytes.Equal(readFile(t, out), readFile(t, opts.OutputPath)) {
				t.Fatal("two runs wrote different archives")
			}
		}
	})
}

// checkCreated checks a written archive with clip's reader and ociclip's.
func checkCreated(t *testing.T, out string, res *ociclip.Result, tars map[string][]byte, layout string) {
	t.Helper()
	md, err := clip.NewClipArchiver().ExtractMetadata(out)
	if err != nil {
		t.Fatalf("clip ExtractMetadata: %v", err)
	}
	n := 0
	md.Index.Walk(func(items []any) {
		for _, it := range items {
			checkCleanAbs(t, "clip node path", it.(*common.ClipNode).Path)
			n++
		}
	})
	if n != res.Nodes || md.Get("/") == nil {
		t.Fatalf("clip reads %d nodes (root: %v), the result says %d", n, md.Get("/") != nil, res.Nodes)
	}
	a, err := archive.ReadFile(out)
	if err != nil {
		t.Fatalf("archive.ReadFile: %v", err)
	}
	checkArchiveNodes(t, a.Nodes)
	if a.Extension == nil {
		t.Fatal("no extension section")
	}
	usize := map[string]int64{}
	for _, le := range a.Extension.Layers {
		usize[le.Digest] = le.USize
	}
	fr := ociclip.NewReader(a, layoutBlobs(layout))
	read := 0
	for _, n := range a.Nodes {
		r := n.Remote
		if n.NodeType != common.FileNode || r == nil {
			continue
		}
		u, ok := tars[r.LayerDigest]
		if !ok || r.UOffset+r.ULength > usize[r.LayerDigest] || int64(len(u)) != usize[r.LayerDigest] {
			t.Fatalf("%s: data in layer %s at %d+%d (layer of %d bytes)", n.Path, r.LayerDigest, r.UOffset, r.ULength, usize[r.LayerDigest])
		}
		if read < 8 {
			read++
			var b []byte
			var err error
			if name := strings.TrimPrefix(n.Path, "/"); fs.ValidPath(name) {
				b, err = fr.ReadFile(name)
			} else {
				// A tar name that is no fs.FS name (not UTF-8: io/fs
				// refuses it): read by node instead.
				b = make([]byte, r.ULength)
				var k int
				k, err = fr.ReadNode(context.Background(), n, b, 0)
				if err == io.EOF || err == nil && k != len(b) {
					err = fmt.Errorf("read %d of %d bytes (%v)", k, len(b), err)
				}
			}
			if err != nil || !bytes.Equal(b, u[r.UOffset:r.UOffset+r.ULength]) {
				t.Fatalf("%s: read through the index: %v, or not the tar's bytes", n.Path, err)
			}
		}
	}
}

// layoutBlobs opens the blobs of a layout directory for ociclip.Reader.
type layoutBlobs string

func (l layoutBlobs) OpenLayer(d string) (io.ReaderAt, int64, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(filepath.Join(string(l), "blobs", "sha256", dg.Encoded()))
	if err != nil {
		return nil, 0, err
	}
	return bytes.NewReader(b), int64(len(b)), nil
}
