package ociread

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// FuzzResolve builds a layout from three fuzzed documents and checks that
// Open and Resolve never panic and only fail with errors that wrap one of
// the sentinels. In the templates, @C@/@CS@ stand for the digest/size of
// the config blob (inside the manifest) and @M@/@MS@ for those of the
// manifest blob (inside index.json), so that the fuzzer reaches past digest
// verification.
func FuzzResolve(f *testing.F) {
	const cfg = `{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","rootfs":{"type":"layers","diff_ids":[]}}`
	const man = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@C@","size":@CS@},"layers":[]}`
	const idx = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"annotations":{"org.opencontainers.image.ref.name":"t"},"platform":{"os":"linux","architecture":"amd64"}}]}`
	f.Add([]byte(idx), []byte(man), []byte(cfg), "t", "linux/amd64")
	f.Add([]byte(idx), []byte(man), []byte(cfg), "", "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"@M@","size":@MS@}]}`),
		[]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"@C@","size":@CS@,"platform":{"os":"linux","architecture":"arm64"}}]}`),
		[]byte(man), "", "linux/arm64/v8")
	f.Add([]byte(idx), []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"@C@","size":@CS@},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"@C@","size":@CS@}]}`),
		[]byte(`{"rootfs":{"diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}`), "@@M@", "linux/arm")
	f.Fuzz(func(t *testing.T, indexT, manifestT, config []byte, ref, platform string) {
		if len(indexT)+len(manifestT)+len(config) > 1<<16 {
			return
		}
		b := newLayout(t)
		c := b.blob(config)
		m := b.blob(subst(manifestT, "@C@", string(c.Digest), "@CS@", fmt.Sprint(c.Size)))
		b.indexJSON = subst(indexT, "@M@", string(m.Digest), "@MS@", fmt.Sprint(m.Size))
		b.write()
		l, err := Open(b.dir, OpenOptions{Limits: Limits{MaxJSONBytes: 1 << 16, MaxIndexDepth: 4}})
		if err != nil {
			checkSentinel(t, err)
			return
		}
		_ = l.Refs()
		_ = l.Index()
		sel := Select{Ref: string(subst([]byte(ref), "@M@", string(m.Digest), "@C@", string(c.Digest)))}
		if platform != "" {
			p, err := ParsePlatform(platform)
			if err != nil {
				return
			}
			sel.Platform = &p
		}
		im, err := l.Resolve(context.Background(), sel)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if len(im.Layers) != len(im.DiffIDs) {
			t.Fatalf("%d layers, %d diff_ids", len(im.Layers), len(im.DiffIDs))
		}
	})
}

func subst(b []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		b = bytes.ReplaceAll(b, []byte(kv[i]), []byte(kv[i+1]))
	}
	return b
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrNotLayout, ErrMalformed, ErrRefNotFound, ErrAmbiguous, ErrPlatformNotFound,
		ErrUnsupportedMediaType, ErrBlobMissing, ErrSizeMismatch, ErrDigestMismatch, ErrInvalidDigest, ErrLimit, ErrCycle, ErrInvalidSource,
		ErrInvalidPlatform} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}
