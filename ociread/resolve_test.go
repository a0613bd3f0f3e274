package ociread

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ociclip/ociclip/layerz"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// expect is what a resolve test case computes while building its layout.
type expect struct {
	manifest digest.Digest // digest of the manifest Resolve must choose
	ref      string        // expected Image.RefName
	msg      []string      // substrings the error message must contain
	check    func(t *testing.T, im *Image)
	sel      *Select // overrides the case's Select (for digests known only after building)
}

type resolveCase struct {
	name    string
	opts    OpenOptions
	sel     Select
	build   func(b *tlayout) expect
	wantErr error // nil => success expected
	skipDig bool  // disable digest checks (only to build impossible layouts)
}

func runResolveCases(t *testing.T, cases []resolveCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newLayout(t)
			e := tc.build(b)
			b.write()
			l, err := Open(b.dir, tc.opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			l.skipDigestCheck = tc.skipDig
			sel := tc.sel
			if e.sel != nil {
				sel = *e.sel
			}
			im, err := l.Resolve(context.Background(), sel)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve error = %v, want %v", err, tc.wantErr)
				}
				for _, s := range e.msg {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if e.manifest != "" && im.ManifestDescriptor.Digest != e.manifest {
				t.Errorf("chose manifest %s, want %s", im.ManifestDescriptor.Digest, e.manifest)
			}
			if im.RefName != e.ref {
				t.Errorf("RefName = %q, want %q", im.RefName, e.ref)
			}
			checkImage(t, l, im)
			if e.check != nil {
				e.check(t, im)
			}
		})
	}
}

// checkImage checks the invariants every resolved image satisfies.
func checkImage(t *testing.T, l *Layout, im *Image) {
	t.Helper()
	if len(im.Layers) != len(im.DiffIDs) {
		t.Errorf("%d layers but %d diff_ids", len(im.Layers), len(im.DiffIDs))
	}
	if im.ConfigDescriptor.Digest != im.Manifest.Config.Digest {
		t.Errorf("ConfigDescriptor %s != manifest config %s", im.ConfigDescriptor.Digest, im.Manifest.Config.Digest)
	}
	if got := digest.FromBytes(im.RawConfig); !l.skipDigestCheck && got != im.ConfigDescriptor.Digest {
		t.Errorf("RawConfig digest %s, want %s", got, im.ConfigDescriptor.Digest)
	}
	if im.ManifestDescriptor.MediaType == "" {
		t.Error("ManifestDescriptor.MediaType is empty")
	}
	for _, ly := range im.Layers {
		if !layerz.IsLayerMediaType(ly.MediaType) {
			t.Errorf("layer media type %q", ly.MediaType)
		}
	}
}

func wantPlatform(s string) func(t *testing.T, im *Image) {
	return func(t *testing.T, im *Image) {
		t.Helper()
		p := im.ManifestDescriptor.Platform
		if p == nil {
			t.Fatalf("ManifestDescriptor.Platform is nil, want %s", s)
		}
		if got := FormatPlatform(*p); got != s {
			t.Errorf("ManifestDescriptor.Platform = %s, want %s", got, s)
		}
		if got := FormatPlatform(im.Config.Platform); got != s && !(s == "linux/arm64/v8" && got == "linux/arm64") {
			t.Errorf("config platform = %s, want %s", got, s)
		}
	}
}

func TestResolveSelection(t *testing.T) {
	host := runtime.GOARCH
	cases := []resolveCase{
		{
			name: "single OCI image without ref",
			build: func(b *tlayout) expect {
				m := b.image(img{layers: 3})
				b.add(m, "")
				return expect{manifest: m.Digest, check: func(t *testing.T, im *Image) {
					if len(im.Layers) != 3 || im.Manifest.MediaType != v1.MediaTypeImageManifest {
						t.Errorf("layers %d, media type %q", len(im.Layers), im.Manifest.MediaType)
					}
					if im.Config.Created == nil || im.Config.Created.Year() != 2024 {
						t.Errorf("created = %v", im.Config.Created)
					}
					if len(im.Config.Config.Cmd) != 1 || im.Config.Config.Cmd[0] != "/bin/sh" {
						t.Errorf("cmd = %q", im.Config.Config.Cmd)
					}
					wantPlatform("linux/amd64")(t, im) // recorded from the config
				}}
			},
		},
		{
			name: "skopeo-style ref annotation",
			sel:  Select{Ref: "24.04"},
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "24.04")
				return expect{manifest: m.Digest, ref: "24.04"}
			},
		},
		{
			name:    "single image selected by its ref with another platform asked for",
			sel:     Select{Ref: "latest", Platform: platPtr("linux/s390x")},
			wantErr: ErrPlatformNotFound,
			build: func(b *tlayout) expect {
				m := b.image(img{platform: "linux/arm64/v8"})
				b.add(m, "latest")
				return expect{msg: []string{"linux/s390x", "linux/arm64/v8"}}
			},
		},
		{
			name: "single image selected by its ref with its platform asked for",
			sel:  Select{Ref: "latest", Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				m := b.image(img{platform: "linux/arm64/v8"})
				b.add(m, "latest")
				return expect{manifest: m.Digest, ref: "latest", check: wantPlatform("linux/arm64/v8")}
			},
		},
		{
			name: "two refs select first",
			sel:  Select{Ref: "a"},
			build: func(b *tlayout) expect {
				ma, mb := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(ma, "a")
				b.add(mb, "b")
				return expect{manifest: ma.Digest, ref: "a"}
			},
		},
		{
			name: "two refs select second",
			sel:  Select{Ref: "b"},
			build: func(b *tlayout) expect {
				ma, mb := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(ma, "a")
				b.add(mb, "b")
				return expect{manifest: mb.Digest, ref: "b", check: func(t *testing.T, im *Image) {
					if im.Config.Config.Cmd[0] != "b" {
						t.Errorf("cmd %q", im.Config.Config.Cmd)
					}
				}}
			},
		},
		{
			name:    "unknown ref lists refs",
			sel:     Select{Ref: "nope"},
			wantErr: ErrRefNotFound,
			build: func(b *tlayout) expect {
				ma, mb := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(ma, "alpha")
				b.add(mb, "beta")
				return expect{msg: []string{`"nope"`, `"alpha"`, `"beta"`, string(ma.Digest), string(mb.Digest), "index.json"}}
			},
		},
		{
			name:    "empty ref with two images is ambiguous",
			wantErr: ErrAmbiguous,
			build: func(b *tlayout) expect {
				b.add(b.image(img{cmd: "a"}), "alpha")
				b.add(b.image(img{cmd: "b"}), "beta")
				return expect{msg: []string{`"alpha"`, `"beta"`}}
			},
		},
		{
			name:    "empty ref with two unnamed images is ambiguous",
			wantErr: ErrAmbiguous,
			build: func(b *tlayout) expect {
				m1, m2 := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(m1, "")
				b.add(m2, "")
				return expect{msg: []string{"<no ref name>", string(m1.Digest), string(m2.Digest)}}
			},
		},
		{
			name:    "empty index",
			wantErr: ErrRefNotFound,
			build:   func(b *tlayout) expect { return expect{msg: []string{"no manifests"}} },
		},
		{
			name: "by digest",
			build: func(b *tlayout) expect {
				ma, mb := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(ma, "a")
				b.add(mb, "b")
				return expect{manifest: mb.Digest, ref: "b", sel: &Select{Ref: string(mb.Digest)}}
			},
		},
		{
			name: "by @digest",
			build: func(b *tlayout) expect {
				ma, mb := b.image(img{cmd: "a"}), b.image(img{cmd: "b"})
				b.add(ma, "a")
				b.add(mb, "b")
				return expect{manifest: ma.Digest, ref: "a", sel: &Select{Ref: "@" + string(ma.Digest)}}
			},
		},
		{
			name:    "unknown digest lists digests",
			sel:     Select{Ref: "sha256:" + strings.Repeat("0", 64)},
			wantErr: ErrRefNotFound,
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(m, "a")
				return expect{msg: []string{strings.Repeat("0", 64), string(m.Digest), `"a"`}}
			},
		},
		{
			name:    "malformed digest ref",
			sel:     Select{Ref: "@sha256:../../etc/passwd"},
			wantErr: ErrInvalidDigest,
			build: func(b *tlayout) expect {
				b.add(b.image(img{}), "a")
				return expect{msg: []string{"../../etc/passwd"}}
			},
		},
		{
			name: "ref name that looks like a digest wins",
			sel:  Select{Ref: "sha256:" + strings.Repeat("a", 64)},
			build: func(b *tlayout) expect {
				m := b.image(img{})
				b.add(b.image(img{cmd: "x"}), "x")
				b.add(m, "sha256:"+strings.Repeat("a", 64))
				return expect{manifest: m.Digest, ref: "sha256:" + strings.Repeat("a", 64)}
			},
		},
		{
			name: "nested index default platform",
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64/v8"}), "linux/arm64/v8")
				b.add(b.index(v1.MediaTypeImageIndex, amd, arm), "multi")
				switch host {
				case "amd64":
					return expect{manifest: amd.Digest, ref: "multi", check: wantPlatform("linux/amd64")}
				case "arm64":
					return expect{manifest: arm.Digest, ref: "multi", check: wantPlatform("linux/arm64/v8")}
				}
				return expect{} // other hosts: see the next case
			},
		},
		{
			name:  "nested index explicit platform linux/arm64",
			sel:   Select{Ref: "multi", Platform: platPtr("linux/arm64")},
			build: nestedTwo(1),
		},
		{
			name:  "nested index explicit platform linux/arm64/v8",
			sel:   Select{Ref: "multi", Platform: platPtr("linux/arm64/v8")},
			build: nestedTwo(1),
		},
		{
			name: "arm64 descriptor without variant matches v8",
			sel:  Select{Platform: platPtr("linux/arm64/v8")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64"}), "linux/arm64")
				b.add(b.index(v1.MediaTypeImageIndex, amd, arm), "")
				return expect{manifest: arm.Digest}
			},
		},
		{
			name:  "nested index explicit platform linux/amd64",
			sel:   Select{Ref: "multi", Platform: &v1.Platform{OS: "linux", Architecture: "x86_64"}},
			build: nestedTwo(0),
		},
		{
			name:    "nested index missing platform lists available",
			sel:     Select{Ref: "multi", Platform: platPtr("linux/riscv64")},
			wantErr: ErrPlatformNotFound,
			build:   nestedTwo(0, "linux/riscv64", "available: linux/amd64, linux/arm64/v8", `ref "multi"`),
		},
		{
			name:    "wanted variant must match",
			sel:     Select{Ref: "multi", Platform: platPtr("linux/arm64/v9")},
			wantErr: ErrPlatformNotFound,
			build:   nestedTwo(0, "linux/arm64/v9", "available: linux/amd64, linux/arm64/v8"),
		},
		{
			name: "arm without variant prefers v7 then lower",
			sel:  Select{Platform: platPtr("linux/arm")},
			build: func(b *tlayout) expect {
				v5 := plat(b.image(img{platform: "linux/arm/v5"}), "linux/arm/v5")
				v6 := plat(b.image(img{platform: "linux/arm/v6"}), "linux/arm/v6")
				v8 := plat(b.image(img{platform: "linux/arm/v8"}), "linux/arm/v8")
				b.add(b.index(v1.MediaTypeImageIndex, v5, v8, v6), "")
				return expect{manifest: v6.Digest}
			},
		},
		{
			name: "arm without variant takes v7 first",
			sel:  Select{Platform: platPtr("linux/arm")},
			build: func(b *tlayout) expect {
				v6 := plat(b.image(img{platform: "linux/arm/v6"}), "linux/arm/v6")
				v7 := plat(b.image(img{platform: "linux/arm/v7"}), "linux/arm/v7")
				b.add(b.index(v1.MediaTypeImageIndex, v6, v7), "")
				return expect{manifest: v7.Digest}
			},
		},
		{
			name: "exact empty variant preferred over other variants",
			sel:  Select{Platform: platPtr("linux/amd64")},
			build: func(b *tlayout) expect {
				v3 := plat(b.image(img{platform: "linux/amd64/v3"}), "linux/amd64/v3")
				v1d := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				b.add(b.index(v1.MediaTypeImageIndex, v3, v1d), "")
				return expect{manifest: v1d.Digest}
			},
		},
		{
			name: "several matches pick the first in index order",
			sel:  Select{Platform: platPtr("linux/amd64")},
			build: func(b *tlayout) expect {
				m1 := plat(b.image(img{seed: "1"}), "linux/amd64")
				m2 := plat(b.image(img{seed: "2"}), "linux/amd64")
				b.add(b.index(v1.MediaTypeImageIndex, m1, m2), "")
				return expect{manifest: m1.Digest}
			},
		},
		{
			name: "attestation and artifact manifests are skipped",
			sel:  Select{Ref: "t", Platform: platPtr("linux/amd64")},
			build: func(b *tlayout) expect {
				// An artifact whose descriptor claims linux/amd64 and
				// whose config is not an image config.
				art := plat(b.image(img{configMT: "application/vnd.example.thing.v1+json"}), "linux/amd64")
				// A buildx attestation manifest.
				att := plat(b.image(img{configMT: "application/vnd.oci.image.config.v1+json", seed: "att",
					layerMT: "application/vnd.in-toto+json"}), "unknown/unknown")
				att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
				real := plat(b.image(img{seed: "real"}), "linux/amd64")
				b.add(b.index(v1.MediaTypeImageIndex, art, att, real), "t")
				return expect{manifest: real.Digest, ref: "t"}
			},
		},
		{
			name:    "only attestations: platform not found",
			sel:     Select{Platform: platPtr("linux/amd64")},
			wantErr: ErrPlatformNotFound,
			build: func(b *tlayout) expect {
				att := plat(b.image(img{layerMT: "application/vnd.in-toto+json"}), "unknown/unknown")
				b.add(b.index(v1.MediaTypeImageIndex, att), "")
				return expect{msg: []string{"available: none"}}
			},
		},
		{
			name: "Docker manifest list, manifest and config",
			sel:  Select{Ref: "d", Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{docker: true, platform: "linux/amd64", layers: 2}), "linux/amd64")
				arm := plat(b.image(img{docker: true, platform: "linux/arm64/v8", layers: 2}), "linux/arm64/v8")
				b.add(b.index(MediaTypeDockerManifestList, amd, arm), "d")
				return expect{manifest: arm.Digest, ref: "d", check: func(t *testing.T, im *Image) {
					if im.Manifest.MediaType != MediaTypeDockerManifest || im.ManifestDescriptor.MediaType != MediaTypeDockerManifest {
						t.Errorf("manifest media type %q / %q", im.Manifest.MediaType, im.ManifestDescriptor.MediaType)
					}
					if im.ConfigDescriptor.MediaType != MediaTypeDockerConfig {
						t.Errorf("config media type %q", im.ConfigDescriptor.MediaType)
					}
					for _, l := range im.Layers {
						if l.MediaType != layerz.MediaTypeDockerLayerGzip {
							t.Errorf("layer media type %q", l.MediaType)
						}
					}
					if !strings.Contains(string(im.RawConfig), "docker_version") {
						t.Errorf("RawConfig lacks docker_version: %s", im.RawConfig)
					}
				}}
			},
		},
		{
			name: "Docker manifest directly in index.json with uncompressed layer",
			build: func(b *tlayout) expect {
				m := b.image(img{docker: true, layerMT: layerz.MediaTypeDockerLayer})
				b.add(m, "x")
				return expect{manifest: m.Digest, ref: "x"}
			},
		},
		{
			name: "empty media types in descriptors are detected from the JSON",
			sel:  Select{Platform: platPtr("linux/amd64")},
			build: func(b *tlayout) expect {
				// Manifest JSON without mediaType, descriptor without one
				// either; index likewise.
				m := b.image(img{manifestMT: "-"})
				m.MediaType = ""
				ix := b.jsonBlob("", map[string]any{"schemaVersion": 2, "manifests": []v1.Descriptor{plat(m, "linux/amd64")}})
				b.add(ix, "")
				return expect{manifest: m.Digest, check: func(t *testing.T, im *Image) {
					if im.ManifestDescriptor.MediaType != v1.MediaTypeImageManifest {
						t.Errorf("media type %q", im.ManifestDescriptor.MediaType)
					}
				}}
			},
		},
		{
			name: "nested manifests without platform use the config",
			sel:  Select{Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				amd := b.image(img{platform: "linux/amd64"})
				arm := b.image(img{platform: "linux/arm64"})
				b.add(b.index(v1.MediaTypeImageIndex, amd, arm), "")
				return expect{manifest: arm.Digest, check: wantPlatform("linux/arm64")}
			},
		},
		{
			name: "several index.json entries share a ref: platform picks",
			sel:  Select{Ref: "r", Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64"}), "linux/arm64")
				b.add(b.image(img{cmd: "other"}), "other")
				b.add(amd, "r")
				b.add(arm, "r")
				return expect{manifest: arm.Digest, ref: "r"}
			},
		},
		{
			name: "unnamed per-platform entries without ref",
			sel:  Select{Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64"}), "linux/arm64")
				b.add(amd, "")
				b.add(arm, "")
				return expect{manifest: arm.Digest}
			},
		},
		{
			name: "digest of a nested manifest",
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64"}), "linux/arm64")
				inner := b.index(v1.MediaTypeImageIndex, amd, arm)
				b.add(b.image(img{cmd: "other"}), "other")
				b.add(b.index(v1.MediaTypeImageIndex, inner), "outer")
				return expect{manifest: arm.Digest, ref: "outer", sel: &Select{Ref: string(arm.Digest)}}
			},
		},
		{
			name: "digest of a nested index follows it",
			sel:  Select{Platform: platPtr("linux/amd64")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				inner := b.index(v1.MediaTypeImageIndex, amd)
				b.add(b.index(v1.MediaTypeImageIndex, inner), "outer")
				return expect{manifest: amd.Digest, ref: "outer", sel: &Select{Ref: string(inner.Digest), Platform: platPtr("linux/amd64")}}
			},
		},
		{
			name: "blobs of other platforms may be absent (containerd export)",
			sel:  Select{Platform: platPtr("linux/arm64")},
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				arm := plat(b.image(img{platform: "linux/arm64"}), "linux/arm64")
				noPlat := b.image(img{platform: "linux/s390x"})
				b.add(b.index(v1.MediaTypeImageIndex, amd, noPlat, arm), "")
				os.Remove(b.path(amd.Digest))
				os.Remove(b.path(noPlat.Digest)) // platform unknowable, but another matches
				return expect{manifest: arm.Digest}
			},
		},
		{
			name:    "unreadable platform-less candidate reported when nothing matches",
			sel:     Select{Platform: platPtr("linux/arm64")},
			wantErr: ErrBlobMissing,
			build: func(b *tlayout) expect {
				amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
				noPlat := b.image(img{platform: "linux/arm64"})
				b.add(b.index(v1.MediaTypeImageIndex, amd, noPlat), "")
				os.Remove(b.path(noPlat.Digest))
				return expect{msg: []string{string(noPlat.Digest), "linux/arm64"}}
			},
		},
		{
			name: "zero layers (umoci new)",
			build: func(b *tlayout) expect {
				m := b.image(img{noLayers: true})
				b.add(m, "t")
				return expect{manifest: m.Digest, ref: "t"}
			},
		},
		{
			name: "nesting at the depth limit is accepted",
			opts: OpenOptions{Limits: Limits{MaxIndexDepth: 3}},
			build: func(b *tlayout) expect {
				m := plat(b.image(img{}), "linux/amd64")
				d := m
				for i := 0; i < 3; i++ {
					d = b.index(v1.MediaTypeImageIndex, d)
				}
				b.add(d, "deep")
				return expect{manifest: m.Digest, ref: "deep"}
			},
			sel: Select{Platform: platPtr("linux/amd64")},
		},
	}
	if host != "amd64" && host != "arm64" {
		// The default-platform case needs an amd64 or arm64 host.
		cases = slices.DeleteFunc(cases, func(c resolveCase) bool { return c.name == "nested index default platform" })
	}
	runResolveCases(t, cases)
}

// nestedTwo builds index.json -> "multi" -> OCI index {linux/amd64,
// linux/arm64/v8}; the case expects manifest number want, or an error
// mentioning msg.
func nestedTwo(want int, msg ...string) func(b *tlayout) expect {
	return func(b *tlayout) expect {
		amd := plat(b.image(img{platform: "linux/amd64"}), "linux/amd64")
		arm := plat(b.image(img{platform: "linux/arm64/v8"}), "linux/arm64/v8")
		ix := b.index(v1.MediaTypeImageIndex, amd, arm)
		b.add(ix, "multi")
		if len(msg) > 0 {
			return expect{msg: append(msg, string(ix.Digest)[:20])}
		}
		m := []v1.Descriptor{amd, arm}[want]
		return expect{manifest: m.Digest, ref: "multi", check: wantPlatform(FormatPlatform(*m.Platform))}
	}
}
