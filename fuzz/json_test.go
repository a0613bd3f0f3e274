package fuzz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/ociread"
)

// jsonLimits are the limits of FuzzLayoutJSON.
var jsonLimits = ociread.Limits{MaxJSONBytes: 1 << 16, MaxIndexDepth: 3}

// umociInsertBlobs are the blobs of testdata/umoci-insert (21 KB), copied
// into every layout FuzzLayoutJSON writes, so that real manifests resolve.
func umociInsertBlobs(tb testing.TB) map[digest.Digest][]byte {
	tb.Helper()
	dir := filepath.Join(repoTestdata, "umoci-insert", "blobs", "sha256")
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[digest.Digest][]byte{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out[digest.FromBytes(b)] = b
	}
	return out
}

// In the templates of FuzzLayoutJSON, @C@/@CS@ are the digest and size of
// the config blob, @M@/@MS@ those of the manifest blob and @N@/@NS@ those
// of the nested index blob; @L@/@LS@/@D@ are the digest, size and DiffID
// of the first layer of testdata/umoci-insert.
const (
	tmplConfig   = `{"created":"2024-01-02T03:04:05Z","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@D@"]}}`
	tmplManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@C@","size":@CS@},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"@L@","size":@LS@}]}`
	tmplNested   = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"platform":{"os":"unknown","architecture":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}`
	tmplIndex    = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"@N@","size":@NS@,"annotations":{"org.opencontainers.image.ref.name":"multi"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"annotations":{"org.opencontainers.image.ref.name":"single","io.containerd.image.name":"docker.io/library/x:1"}}]}`
)

func FuzzLayoutJSON(f *testing.F) {
	real := func(rel string) []byte { return readTestdata(f, rel) }
	umoci := real("umoci-insert/index.json")
	man := real("umoci-insert/blobs/sha256/5091818968d88b34fd3b9ea25d31f9e69db690e9ff8fd9c7c4f256e2e329f5aa")
	cfg := real("umoci-insert/blobs/sha256/fde91df0a610a71e2607e6110489983f6d8e7b9ee266c5b5ec47a3ac8d3583a0")
	f.Add(umoci, []byte(tmplNested), man, cfg, "1.35", "")
	f.Add([]byte(tmplIndex), []byte(tmplNested), []byte(tmplManifest), []byte(tmplConfig), "multi", "linux/arm64")
	f.Add([]byte(tmplIndex), []byte(tmplNested), []byte(tmplManifest), []byte(tmplConfig), "single", "")
	f.Add([]byte(tmplIndex), []byte(tmplNested), []byte(tmplManifest), []byte(tmplConfig), "x", "linux/amd64")
	f.Add([]byte(tmplIndex), []byte(tmplNested), []byte(tmplManifest), []byte(tmplConfig), "@M@", "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"@N@","size":@NS@}]}`),
		[]byte(strings.ReplaceAll(tmplNested, "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")),
		[]byte(strings.ReplaceAll(tmplManifest, "application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")),
		[]byte(tmplConfig), "", "linux/arm64/v8")
	// A nested index referring to an index (depth), and one that is its own
	// child by digest (impossible with real hashes: the template cannot
	// contain its own digest).
	f.Add([]byte(tmplIndex), []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"@N@","size":@NS@}]}`),
		[]byte(tmplManifest), []byte(tmplConfig), "multi", "linux/amd64")
	blobs := umociInsertBlobs(f)
	l0 := digest.Digest("sha256:966a862a14a4d89095bb5563f380b180d77ebb527ea250913c6ea157f6efab25")
	const d0 = "sha256:f422ae6267a50a652ce73e1c4df0ee115b37098e4e6d7b87dad52b863e578bdc"

	f.Fuzz(func(t *testing.T, indexT, nestedT, manifestT, config []byte, ref, platform string) {
		if len(indexT)+len(nestedT)+len(manifestT)+len(config) > 1<<17 {
			return
		}
		dir := t.TempDir()
		bdir := filepath.Join(dir, "blobs", "sha256")
		if err := os.MkdirAll(bdir, 0o755); err != nil {
			t.Fatal(err)
		}
		written := map[digest.Digest]bool{}
		put := func(b []byte) (string, string) {
			d := digest.FromBytes(b)
			if err := os.WriteFile(filepath.Join(bdir, d.Encoded()), b, 0o644); err != nil {
				t.Fatal(err)
			}
			written[d] = true
			return d.String(), fmt.Sprint(len(b))
		}
		for _, b := range blobs {
			put(b)
		}
		layer := []string{"@L@", l0.String(), "@LS@", fmt.Sprint(len(blobs[l0])), "@D@", d0}
		c, cs := put(subst(config, layer...))
		m, ms := put(subst(manifestT, append(layer, "@C@", c, "@CS@", cs)...))
		// The nested index cannot name itself: @N@ in it stays literal.
		n, ns := put(subst(nestedT, append(layer, "@C@", c, "@CS@", cs, "@M@", m, "@MS@", ms)...))
		kv := append(layer, "@C@", c, "@CS@", cs, "@M@", m, "@MS@", ms, "@N@", n, "@NS@", ns)
		if err := os.WriteFile(filepath.Join(dir, "index.json"), subst(indexT, kv...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := ociread.Open(dir, ociread.OpenOptions{Limits: jsonLimits})
		if err != nil {
			checkOCIError(t, err)
			return
		}
		_ = l.Refs()
		_ = l.Index()
		sel := ociread.Select{Ref: string(subst([]byte(ref), kv...))}
		if platform != "" {
			parts := strings.SplitN(platform, "/", 3)
			p := v1.Platform{OS: parts[0]}
			if len(parts) > 1 {
				p.Architecture = parts[1]
			}
			if len(parts) > 2 {
				p.Variant = parts[2]
			}
			sel.Platform = &p
		}
		im, err := l.Resolve(context.Background(), sel)
		if err != nil {
			checkOCIError(t, err)
			return
		}
		if len(im.Layers) != len(im.DiffIDs) {
			t.Fatalf("%d layers, %d diff_ids", len(im.Layers), len(im.DiffIDs))
		}
		for i, d := range im.Layers {
			if !layerz.IsLayerMediaType(d.MediaType) || d.Digest.Validate() != nil || d.Size < 0 || im.DiffIDs[i].Validate() != nil {
				t.Fatalf("layer %d: %+v, diff_id %q", i, d, im.DiffIDs[i])
			}
		}
		if !written[im.ManifestDescriptor.Digest] || !written[im.ConfigDescriptor.Digest] {
			t.Fatalf("manifest %s or config %s is not a blob of the layout", im.ManifestDescriptor.Digest, im.ConfigDescriptor.Digest)
		}
		if digest.FromBytes(im.RawConfig) != im.ConfigDescriptor.Digest || int64(len(im.RawConfig)) > jsonLimits.MaxJSONBytes {
			t.Fatalf("config of %d bytes is not %s", len(im.RawConfig), im.ConfigDescriptor.Digest)
		}
		again, err := l.Resolve(context.Background(), sel)
		if err != nil || !reflect.DeepEqual(im, again) {
			t.Fatalf("Resolve is not deterministic: %v", err)
		}
	})
}

// checkOCIError fails unless err wraps an ociread sentinel.
func checkOCIError(t *testing.T, err error) {
	t.Helper()
	if !wrapsOneOf(err, ociSentinels) {
		t.Fatalf("error wraps no ociread sentinel: %v", err)
	}
}
