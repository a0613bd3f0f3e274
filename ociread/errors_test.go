package ociread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestOpen(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(b *tlayout) string // returns the dir to open ("" => b.dir)
		limits  Limits
		wantErr error
		msg     []string
	}{
		{name: "missing directory", wantErr: ErrNotLayout, msg: []string{"nope"},
			setup: func(b *tlayout) string { return filepath.Join(b.dir, "nope") }},
		{name: "not a directory", wantErr: ErrNotLayout, msg: []string{"not a directory"},
			setup: func(b *tlayout) string { b.write(); return filepath.Join(b.dir, "index.json") }},
		{name: "missing oci-layout", wantErr: ErrNotLayout, msg: []string{"oci-layout"},
			setup: func(b *tlayout) string { b.write(); os.Remove(filepath.Join(b.dir, "oci-layout")); return "" }},
		{name: "wrong layout version", wantErr: ErrNotLayout, msg: []string{"oci-layout", `"2.0.0"`},
			setup: func(b *tlayout) string {
				b.write()
				b.file("oci-layout", []byte(`{"imageLayoutVersion":"2.0.0"}`))
				return ""
			}},
		{name: "oci-layout not JSON", wantErr: ErrNotLayout, msg: []string{"oci-layout"},
			setup: func(b *tlayout) string { b.write(); b.file("oci-layout", []byte("1.0.0")); return "" }},
		{name: "oci-layout is a FIFO", wantErr: ErrNotLayout, msg: []string{"oci-layout", "not a regular file"},
			setup: func(b *tlayout) string {
				b.write()
				p := filepath.Join(b.dir, "oci-layout")
				os.Remove(p)
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					b.t.Skip("mkfifo:", err)
				}
				return ""
			}},
		{name: "missing index.json", wantErr: ErrNotLayout, msg: []string{"index.json"},
			setup: func(b *tlayout) string { return "" }},
		{name: "index.json not JSON", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string { b.indexJSON = []byte(`{"schemaVersion":2,`); b.write(); return "" }},
		{name: "index.json is an array", wantErr: ErrMalformed, msg: []string{"index.json", "JSON object"},
			setup: func(b *tlayout) string { b.indexJSON = []byte(` []`); b.write(); return "" }},
		{name: "index.json is null", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string { b.indexJSON = []byte(`null`); b.write(); return "" }},
		{name: "index.json empty", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string { b.indexJSON = []byte{}; b.write(); return "" }},
		{name: "index.json trailing garbage", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string { b.indexJSON = []byte(`{"schemaVersion":2}{}`); b.write(); return "" }},
		{name: "index.json schemaVersion 1", wantErr: ErrMalformed, msg: []string{"index.json", "schemaVersion is 1"},
			setup: func(b *tlayout) string {
				b.indexJSON = []byte(`{"schemaVersion":1,"manifests":[]}`)
				b.write()
				return ""
			}},
		{name: "index.json without schemaVersion", wantErr: ErrMalformed, msg: []string{"schemaVersion is 0"},
			setup: func(b *tlayout) string { b.indexJSON = []byte(`{"manifests":[]}`); b.write(); return "" }},
		{name: "index.json huge size number", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string {
				b.indexJSON = []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:00","size":1e30}]}`)
				b.write()
				return ""
			}},
		{name: "index.json wrong field type", wantErr: ErrMalformed, msg: []string{"index.json"},
			setup: func(b *tlayout) string {
				b.indexJSON = []byte(`{"schemaVersion":2,"manifests":{"a":1}}`)
				b.write()
				return ""
			}},
		{name: "index.json too big", wantErr: ErrLimit, limits: Limits{MaxJSONBytes: 64}, msg: []string{"index.json", "MaxJSONBytes 64"},
			setup: func(b *tlayout) string {
				b.add(b.image(img{}), "a-rather-long-ref-name-to-pass-64-bytes")
				b.write()
				return ""
			}},
		{name: "index.json is a manifest", wantErr: ErrMalformed, msg: []string{"index.json", "mediaType"},
			setup: func(b *tlayout) string {
				b.indexJSON = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
				b.write()
				return ""
			}},
		{name: "index.json odd media type", wantErr: ErrUnsupportedMediaType, msg: []string{"index.json", "text/plain"},
			setup: func(b *tlayout) string {
				b.indexJSON = []byte(`{"schemaVersion":2,"mediaType":"text/plain"}`)
				b.write()
				return ""
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newLayout(t)
			dir := tc.setup(b)
			if dir == "" {
				dir = b.dir
			}
			_, err := Open(dir, OpenOptions{Limits: tc.limits})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestOpenAccessors(t *testing.T) {
	b := newLayout(t)
	m1, m2 := b.image(img{cmd: "1"}), b.image(img{cmd: "2"})
	b.add(m1, "b")
	b.add(m2, "a")
	b.add(m1, "b") // duplicate ref name: listed once
	b.add(m2, "")
	l := b.open(OpenOptions{})
	if l.Dir() != b.dir {
		t.Errorf("Dir() = %q", l.Dir())
	}
	if got := fmt.Sprint(l.Refs()); got != "[b a]" {
		t.Errorf("Refs() = %s", got)
	}
	ix := l.Index()
	if len(ix.Manifests) != 4 || ix.SchemaVersion != 2 {
		t.Fatalf("Index() = %+v", ix)
	}
	ix.Manifests[0].Annotations[v1.AnnotationRefName] = "mutated"
	if got := fmt.Sprint(l.Refs()); got != "[b a]" {
		t.Errorf("Index() is not a copy: Refs() = %s", got)
	}
}

// rawIndex writes index.json with the given descriptors verbatim.
func rawIndex(b *tlayout, descs ...any) {
	data, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": descs})
	if err != nil {
		b.t.Fatal(err)
	}
	b.indexJSON = data
}

// cyclicIndex stores, under the made-up digest fake, an index whose
// children are descs plus a descriptor of fake itself when self is set. It
// returns fake's descriptor. Content addressing makes this impossible with
// real digests, hence skipDigestCheck in the cases that use it.
func cyclicIndex(b *tlayout, fake digest.Digest, children func(self v1.Descriptor) []v1.Descriptor) v1.Descriptor {
	self := v1.Descriptor{MediaType: v1.MediaTypeImageIndex, Digest: fake}
	var data []byte
	for i := 0; i < 10; i++ { // find the size fixed point
		var err error
		data, err = json.Marshal(map[string]any{"schemaVersion": 2, "manifests": children(self)})
		if err != nil {
			b.t.Fatal(err)
		}
		if int64(len(data)) == self.Size {
			break
		}
		self.Size = int64(len(data))
	}
	b.file(filepath.Join("blobs", "sha256", fake.Encoded()), data)
	return self
}

func TestResolveErrors(t *testing.T) {
	fakeA := digest.Digest("sha256:" + strings.Repeat("a", 64))
	fakeB := digest.Digest("sha256:" + strings.Repeat("b", 64))
	cases := []resolveCase{
		{
			name: "manifest blob missing", wantErr: ErrBlobMissing,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "x")
				os.Remove(b.path(m.Digest))
				return expect{msg: []string{string(m.Digest), b.path(m.Digest)}}
			},
		},
		{
			name: "config blob missing", wantErr: ErrBlobMissing,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "x")
				var mf v1.Manifest
				readJSON(b, m.Digest, &mf)
				os.Remove(b.path(mf.Config.Digest))
				return expect{msg: []string{string(mf.Config.Digest), string(m.Digest)}}
			},
		},
		{
			name: "blob path is a directory", wantErr: ErrBlobMissing,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "x")
				os.Remove(b.path(m.Digest))
				os.Mkdir(b.path(m.Digest), 0o755)
				return expect{msg: []string{string(m.Digest), "not a regular file"}}
			},
		},
		{
			name: "size mismatch: blob shorter than descriptor", wantErr: ErrSizeMismatch,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				real := m.Size
				m.Size += 5
				b.add(m, "x")
				return expect{msg: []string{string(m.Digest), b.path(m.Digest), fmt.Sprint(real), fmt.Sprint(real + 5)}}
			},
		},
		{
			name: "size mismatch: blob longer than descriptor", wantErr: ErrSizeMismatch,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				real := m.Size
				m.Size -= 5
				b.add(m, "x")
				return expect{msg: []string{string(m.Digest), b.path(m.Digest), fmt.Sprint(real), fmt.Sprint(real - 5)}}
			},
		},
		{
			name: "digest mismatch on manifest", wantErr: ErrDigestMismatch,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "x")
				data, _ := os.ReadFile(b.path(m.Digest))
				data[len(data)-1] = ' ' // same size, other content (and still JSON)
				os.WriteFile(b.path(m.Digest), data, 0o644)
				return expect{msg: []string{"expected " + string(m.Digest), "actual " + digest.FromBytes(data).String(), b.path(m.Digest)}}
			},
		},
		{
			name: "digest mismatch on config", wantErr: ErrDigestMismatch,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "x")
				var mf v1.Manifest
				readJSON(b, m.Digest, &mf)
				data, _ := os.ReadFile(b.path(mf.Config.Digest))
				data[0] = ' '
				os.WriteFile(b.path(mf.Config.Digest), data, 0o644)
				return expect{msg: []string{"expected " + string(mf.Config.Digest), "actual sha256:"}}
			},
		},
		{
			name: "invalid digest: path traversal", wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				rawIndex(b, map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": "sha256:../../etc/passwd", "size": 10})
				return expect{msg: []string{"sha256:../../etc/passwd", "index.json manifests[0]"}}
			},
		},
		{
			name: "invalid digest: uppercase hex", wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				m.Digest = digest.Digest("sha256:" + strings.ToUpper(m.Digest.Encoded()))
				b.add(m, "")
				return expect{msg: []string{"lowercase"}}
			},
		},
		{
			name: "invalid digest: unknown algorithm", wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				rawIndex(b, map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 10})
				return expect{msg: []string{"md5:"}}
			},
		},
		{
			name: "invalid digest: layer", wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				cfg := b.jsonBlob(v1.MediaTypeImageConfig, map[string]any{"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + strings.Repeat("1", 64)}}})
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": cfg,
					"layers": []any{map[string]any{"mediaType": v1.MediaTypeImageLayerGzip, "digest": "sha256:/etc/passwd", "size": 1}}})
				b.add(m, "")
				return expect{msg: []string{"layers[0]", "sha256:/etc/passwd"}}
			},
		},
		{
			name: "invalid diff_id", wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				cfg := b.jsonBlob(v1.MediaTypeImageConfig, map[string]any{"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:nothex"}}})
				l := b.blob([]byte("layer"))
				l.MediaType = v1.MediaTypeImageLayer
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": cfg, "layers": []any{l}})
				b.add(m, "")
				return expect{msg: []string{"rootfs.diff_ids[0]", string(cfg.Digest)}}
			},
		},
		{
			name: "missing digest", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				rawIndex(b, map[string]any{"mediaType": v1.MediaTypeImageManifest, "size": 10})
				return expect{msg: []string{"no digest"}}
			},
		},
		{
			name: "negative size", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				m.Size = -1
				b.add(m, "")
				return expect{msg: []string{"negative size -1", string(m.Digest)}}
			},
		},
		{
			name: "unsupported manifest media type in index.json", wantErr: ErrUnsupportedMediaType,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				m.MediaType = "application/vnd.docker.distribution.manifest.v1+prettyjws"
				b.add(m, "old")
				return expect{msg: []string{"manifest.v1+prettyjws", "index.json manifests[0]"}}
			},
		},
		{
			name: "Docker schema 1 content", wantErr: ErrUnsupportedMediaType,
			build: func(b *tlayout) expect {
				m := b.jsonBlob("", map[string]any{"schemaVersion": 1, "name": "x", "fsLayers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"schema 1", string(m.Digest)}}
			},
		},
		{
			name: "unsupported layer media type", wantErr: ErrUnsupportedMediaType,
			build: func(b *tlayout) expect {
				m := b.image(img{layerMT: "application/vnd.example.layer.v1.tar+lz4"})
				b.add(m, "")
				return expect{msg: []string{"lz4", "layers[0]", string(m.Digest)}}
			},
		},
		{
			name: "artifact selected directly", wantErr: ErrUnsupportedMediaType,
			build: func(b *tlayout) expect {
				m := b.image(img{configMT: "application/vnd.cncf.helm.config.v1+json"})
				b.add(m, "chart")
				return expect{msg: []string{"helm", "not an image config", string(m.Digest)}}
			},
		},
		{
			name: "unknown document media type", wantErr: ErrUnsupportedMediaType,
			build: func(b *tlayout) expect {
				m := b.jsonBlob("", map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.example+json", "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"application/vnd.example+json"}}
			},
		},
		{
			name: "diff_ids: one too many", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.image(img{layers: 2, diffDelta: 1})
				b.add(m, "")
				return expect{msg: []string{"3 rootfs.diff_ids", "2 layers", string(m.Digest)}}
			},
		},
		{
			name: "diff_ids: one too few", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.image(img{layers: 2, diffDelta: -1})
				b.add(m, "")
				return expect{msg: []string{"1 rootfs.diff_ids", "2 layers"}}
			},
		},
		{
			name: "manifest not JSON", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.blob([]byte("this is not json"))
				m.MediaType = v1.MediaTypeImageManifest
				b.add(m, "")
				return expect{msg: []string{string(m.Digest)}}
			},
		},
		{
			name: "manifest with wrong schemaVersion", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 3, "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"schemaVersion is 3", string(m.Digest)}}
			},
		},
		{
			name: "manifest without config", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest, "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"config", string(m.Digest)}}
			},
		},
		{
			name: "document kind disagrees with descriptor", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				m.MediaType = v1.MediaTypeImageIndex
				b.add(m, "")
				return expect{msg: []string{"descriptor media type", string(m.Digest)}}
			},
		},
		{
			name: "neither manifest nor index", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				m := b.jsonBlob("", map[string]any{"schemaVersion": 2})
				b.add(m, "")
				return expect{msg: []string{"neither"}}
			},
		},
		{
			name: "config created not a time", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				cfg := b.jsonBlob(v1.MediaTypeImageConfig, map[string]any{"created": "yesterday", "rootfs": map[string]any{"diff_ids": []string{}}})
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": cfg, "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"created", string(cfg.Digest)}}
			},
		},
		{
			name: "config is an array", wantErr: ErrMalformed,
			build: func(b *tlayout) expect {
				cfg := b.jsonBlob(v1.MediaTypeImageConfig, []int{1})
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": cfg, "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{string(cfg.Digest)}}
			},
		},
		{
			name: "manifest over MaxJSONBytes", wantErr: ErrLimit,
			opts: OpenOptions{Limits: Limits{MaxJSONBytes: 400}},
			build: func(b *tlayout) expect {
				m := b.image(img{layers: 4})
				b.add(m, "")
				return expect{msg: []string{"MaxJSONBytes 400", string(m.Digest), fmt.Sprint(m.Size)}}
			},
		},
		{
			name: "config over MaxJSONBytes", wantErr: ErrLimit,
			opts: OpenOptions{Limits: Limits{MaxJSONBytes: 400}},
			build: func(b *tlayout) expect {
				cfg := b.jsonBlob(v1.MediaTypeImageConfig, map[string]any{"author": strings.Repeat("x", 500), "rootfs": map[string]any{"diff_ids": []string{}}})
				m := b.jsonBlob(v1.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": cfg, "layers": []any{}})
				b.add(m, "")
				return expect{msg: []string{"MaxJSONBytes 400", "config " + string(cfg.Digest)}}
			},
		},
		{
			name: "nesting deeper than MaxIndexDepth", wantErr: ErrLimit,
			opts: OpenOptions{Limits: Limits{MaxIndexDepth: 2}},
			build: func(b *tlayout) expect {
				d := plat(b.image(img{}), "linux/amd64")
				for i := 0; i < 3; i++ {
					d = b.index(v1.MediaTypeImageIndex, d)
				}
				b.add(d, "deep")
				return expect{msg: []string{"MaxIndexDepth 2", "3 levels"}}
			},
		},
		{
			name: "nesting deeper than MaxIndexDepth while searching a digest", wantErr: ErrLimit,
			opts: OpenOptions{Limits: Limits{MaxIndexDepth: 2}},
			build: func(b *tlayout) expect {
				m := plat(b.image(img{}), "linux/amd64")
				d := m
				for i := 0; i < 3; i++ {
					d = b.index(v1.MediaTypeImageIndex, d)
				}
				b.add(d, "deep")
				return expect{msg: []string{"MaxIndexDepth 2"}, sel: &Select{Ref: string(m.Digest)}}
			},
		},
		{
			name: "nesting depth counts from index.json for a digest selection", wantErr: ErrLimit,
			opts: OpenOptions{Limits: Limits{MaxIndexDepth: 2}},
			build: func(b *tlayout) expect {
				inner := b.index(v1.MediaTypeImageIndex, plat(b.image(img{}), "linux/amd64"))
				b.add(b.index(v1.MediaTypeImageIndex, b.index(v1.MediaTypeImageIndex, inner)), "deep")
				return expect{msg: []string{"MaxIndexDepth 2", string(inner.Digest)}, sel: &Select{Ref: string(inner.Digest)}}
			},
		},
		{
			name: "index that contains itself", wantErr: ErrCycle, skipDig: true,
			build: func(b *tlayout) expect {
				a := cyclicIndex(b, fakeA, func(self v1.Descriptor) []v1.Descriptor { return []v1.Descriptor{self} })
				b.add(a, "loop")
				return expect{msg: []string{string(fakeA)}}
			},
		},
		{
			name: "two indexes that contain each other", wantErr: ErrCycle, skipDig: true,
			build: func(b *tlayout) expect {
				// A lists B; B lists A. Sizes: A's size must be known
				// to write B; build B around A's eventual descriptor.
				var a v1.Descriptor
				m := plat(b.image(img{}), "linux/s390x")
				for i := 0; i < 3; i++ {
					bb := cyclicIndex(b, fakeB, func(v1.Descriptor) []v1.Descriptor { return []v1.Descriptor{a} })
					a = cyclicIndex(b, fakeA, func(v1.Descriptor) []v1.Descriptor { return []v1.Descriptor{m, bb} })
				}
				b.add(a, "loop")
				return expect{msg: []string{string(fakeA), string(fakeB)}}
			},
		},
		{
			name: "index cycle while searching a digest", wantErr: ErrCycle, skipDig: true,
			build: func(b *tlayout) expect {
				a := cyclicIndex(b, fakeA, func(self v1.Descriptor) []v1.Descriptor { return []v1.Descriptor{self} })
				b.add(a, "loop")
				return expect{sel: &Select{Ref: "sha256:" + strings.Repeat("c", 64)}}
			},
		},
	}
	runResolveCases(t, cases)
}

func readJSON(b *tlayout, d digest.Digest, v any) {
	b.t.Helper()
	data, err := os.ReadFile(b.path(d))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		b.t.Fatal(err)
	}
}

func TestResolveContext(t *testing.T) {
	b := newLayout(t)
	b.add(b.image(img{}), "x")
	l := b.open(OpenOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Resolve(ctx, Select{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with canceled context: %v", err)
	}
	if _, err := l.Resolve(nil, Select{}); err != nil { //nolint:staticcheck // a nil context must not panic
		t.Fatalf("Resolve(nil ctx): %v", err)
	}
	for _, p := range []v1.Platform{{}, {OS: "linux"}, {Architecture: "amd64"}} {
		if _, err := l.Resolve(context.Background(), Select{Platform: &p}); !errors.Is(err, ErrInvalidPlatform) {
			t.Fatalf("Select.Platform %+v: %v, want ErrInvalidPlatform", p, err)
		}
	}
}
