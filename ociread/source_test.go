package ociread

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	colonDir := filepath.Join(tmp, "a:b")
	file := filepath.Join(tmp, "bb.tar")
	colonFile := filepath.Join(tmp, "x:y.tar")
	for _, d := range []string{dir, colonDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, file, nil)
	writeFile(t, colonFile, nil)
	const hex = "cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9"
	const dg = "sha256:" + hex
	missing := filepath.Join(tmp, "missing")

	cases := []struct {
		in   string
		want Source
		err  error
	}{
		// oci:
		{in: "oci:" + dir, want: Source{"oci", dir, ""}},
		{in: "oci:" + dir + ":1.35", want: Source{"oci", dir, "1.35"}},
		{in: "oci:" + dir + ":", want: Source{"oci", dir, ""}},
		{in: "oci:" + dir + ":ref:with:colons", want: Source{"oci", dir, "ref:with:colons"}},
		{in: "oci:" + dir + ":@" + dg, want: Source{"oci", dir, "@" + dg}},
		{in: "oci:" + dir + ":" + dg, want: Source{"oci", dir, dg}},
		{in: "oci:" + dir + "@" + dg, want: Source{"oci", dir, "@" + dg}},
		{in: "oci:" + missing + "@" + dg, want: Source{"oci", missing, "@" + dg}},
		{in: "oci:" + colonDir, want: Source{"oci", colonDir, ""}},
		{in: "oci:" + colonDir + ":1.35", want: Source{"oci", colonDir, "1.35"}},
		{in: "oci:" + colonDir + ":x:y", want: Source{"oci", colonDir, "x:y"}},
		{in: "oci:" + colonDir + "@" + dg, want: Source{"oci", colonDir, "@" + dg}},
		{in: "oci:" + missing + ":1.35", want: Source{"oci", missing, "1.35"}},
		{in: "oci:" + missing + ":a:b", want: Source{"oci", missing, "a:b"}}, // skopeo: first colon
		{in: "oci:relative/dir:tag", want: Source{"oci", "relative/dir", "tag"}},
		// oci-archive:
		{in: "oci-archive:" + file, want: Source{"oci-archive", file, ""}},
		{in: "oci-archive:" + file + ":1.35", want: Source{"oci-archive", file, "1.35"}},
		{in: "oci-archive:" + file + "@" + dg, want: Source{"oci-archive", file, "@" + dg}},
		{in: "oci-archive:" + colonFile, want: Source{"oci-archive", colonFile, ""}},
		{in: "oci-archive:" + colonFile + ":1.35", want: Source{"oci-archive", colonFile, "1.35"}},
		// Nothing of the right kind exists (a:b is a directory): skopeo's
		// first-colon rule.
		{in: "oci-archive:" + colonDir + "/f.tar:1", want: Source{"oci-archive", filepath.Join(tmp, "a"), "b/f.tar:1"}},
		{in: "oci-archive:" + colonDir + ":1", want: Source{"oci-archive", filepath.Join(tmp, "a"), "b:1"}},
		// docker-archive:
		{in: "docker-archive:" + file, want: Source{"docker-archive", file, ""}},
		{in: "docker-archive:" + file + ":busybox:1.35", want: Source{"docker-archive", file, "busybox:1.35"}},
		{in: "docker-archive:" + file + ":localhost:5000/a/b:1", want: Source{"docker-archive", file, "localhost:5000/a/b:1"}},
		{in: "docker-archive:" + file + ":@2", want: Source{"docker-archive", file, "@2"}},
		{in: "docker-archive:" + file + ":@" + dg, want: Source{"docker-archive", file, "@" + dg}},
		{in: "docker-archive:" + colonFile + ":busybox:1.35", want: Source{"docker-archive", colonFile, "busybox:1.35"}},
		{in: "docker-archive:" + file + ":@x", err: ErrInvalidSource},
		{in: "docker-archive:" + file + ":@-1", err: ErrInvalidSource},
		{in: "docker-archive:" + missing + ":busybox:1.35", want: Source{"docker-archive", missing, "busybox:1.35"}},
		// dir:
		{in: "dir:" + dir, want: Source{"dir", dir, ""}},
		{in: "dir:" + colonDir, want: Source{"dir", colonDir, ""}},
		{in: "dir:" + missing + ":x", want: Source{"dir", missing + ":x", ""}},
		// plain paths
		{in: dir, want: Source{"oci", dir, ""}},
		{in: colonDir, want: Source{"oci", colonDir, ""}},
		{in: "./some:dir", want: Source{"oci", "./some:dir", ""}},
		{in: "relative", want: Source{"oci", "relative", ""}},
		// errors
		{in: "", err: ErrInvalidSource},
		{in: "oci:", err: ErrInvalidSource},
		{in: "oci-archive:", err: ErrInvalidSource},
		{in: "docker-archive:", err: ErrInvalidSource},
		{in: "dir:", err: ErrInvalidSource},
		{in: "oci::1.35", err: ErrInvalidSource},
		{in: "docker://busybox", err: ErrInvalidSource},
		{in: "docker-daemon:busybox:latest", err: ErrInvalidSource},
		{in: "containers-storage:x", err: ErrInvalidSource},
	}
	for _, tc := range cases {
		got, err := ParseSource(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseSource(%q) = %+v, %v; want %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSource(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
	}
	// String of a parsed source reads back the same.
	for _, s := range []Source{{"docker-archive", file, "busybox:1.35"}, {"oci", colonDir, "x:y"}, {"oci-archive", colonFile, "@" + dg}} {
		if got, err := ParseSource(s.String()); err != nil || got != s {
			t.Errorf("ParseSource(%q) = %+v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseSource("docker://busybox"); err == nil || !strings.Contains(err.Error(), `"docker"`) {
		t.Errorf("unknown transport error does not name it: %v", err)
	}
}

// TestOpenSourceOCIIsOpen: OpenSource of an oci: source and Open agree.
func TestOpenSourceOCIIsOpen(t *testing.T) {
	l, src := openSrc(t, "oci:"+busyboxDir+":1.35")
	if l.Source() != src || l.Dir() != busyboxDir {
		t.Errorf("Source() = %+v, Dir() = %q", l.Source(), l.Dir())
	}
	sameImage(t, mustResolve(t, l, Select{Ref: src.Ref}), dirImage(t, busyboxDir, "1.35"))
	l2, _ := openSrc(t, busyboxDir)
	if l2.Source().Transport != TransportOCI {
		t.Errorf("plain path transport %q", l2.Source().Transport)
	}
	if err := l2.Close(); err != nil {
		t.Error(err)
	}
}

func TestNormalizeDockerRef(t *testing.T) {
	cases := map[string]string{
		"busybox":                              "docker.io/library/busybox:latest",
		"busybox:1.35":                         "docker.io/library/busybox:1.35",
		"library/busybox:1.35":                 "docker.io/library/busybox:1.35",
		"docker.io/library/busybox:1.35":       "docker.io/library/busybox:1.35",
		"index.docker.io/library/busybox:1.35": "docker.io/library/busybox:1.35",
		"docker.io/busybox:1.35":               "docker.io/library/busybox:1.35",
		"user/app":                             "docker.io/user/app:latest",
		"localhost/app:1":                      "localhost/app:1",
		"localhost:5000/app":                   "localhost:5000/app:latest",
		"ghcr.io/o/r/x:v1":                     "ghcr.io/o/r/x:v1",
		"busybox@sha256:abc":                   "docker.io/library/busybox@sha256:abc",
		"busybox:1@sha256:abc":                 "docker.io/library/busybox:1@sha256:abc",
		"1.35":                                 "docker.io/library/1.35:latest",
		"":                                     "",
		"busybox:":                             "",
		"/x":                                   "",
		"a//b":                                 "",
		"a b":                                  "",
	}
	for in, want := range cases {
		got, ok := normalizeDockerRef(in)
		if got != want || ok != (want != "") {
			t.Errorf("normalizeDockerRef(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// FuzzOpenArchive opens fuzzed bytes as oci-archive and docker-archive
// files, resolves and reads every blob: no panics, only sentinel errors.
func FuzzOpenArchive(f *testing.F) {
	f.Add(tarBytes(f, layoutEntries(f, busyboxDir, "./")[:0]), "")
	b := newLayout(f)
	b.add(b.image(img{}), "x")
	b.write()
	f.Add(tarBytes(f, layoutEntries(f, b.dir, "./")), "x")
	f.Add(tarBytes(f, legacyEntries(f, newLegacyImage(f, "a", 2, "a:1"), newLegacyImage(f, "b", 1))), "@1")
	f.Add(tarBytes(f, append(legacyEntries(f, newLegacyImage(f, "a", 1, "a:1")), tentry{name: "a", typ: '2', link: "manifest.json"})), "a:1")
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		if len(data) > 1<<20 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.tar")
		writeFile(t, p, data)
		for _, tr := range []string{TransportOCIArchive, TransportDockerArchive} {
			l, err := OpenSource(Source{Transport: tr, Path: p}, OpenOptions{Limits: Limits{MaxJSONBytes: 1 << 16, MaxIndexDepth: 4}})
			if err != nil {
				checkSentinel(t, err)
				continue
			}
			_ = l.Refs()
			_ = l.Index()
			im, err := l.Resolve(context.Background(), Select{Ref: ref})
			if err != nil {
				checkSentinel(t, err)
			} else {
				for _, d := range im.Layers {
					if d.Size > 1<<20 {
						continue
					}
					if _, err := l.ReadBlob(d, 1<<20); err != nil && !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrSizeMismatch) {
						checkSentinel(t, err)
					}
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestDockerArchiveLegacyIndex: Index() of a legacy archive is the
// synthesized index, one Docker manifest per manifest.json entry, with the
// first RepoTag as ref name.
func TestDockerArchiveLegacyIndex(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "s.tar"), tarBytes(t, legacyEntries(t,
		newLegacyImage(t, "a", 1, "a:1", "a:2"), newLegacyImage(t, "b", 1))))
	l, _ := openSrc(t, "docker-archive:"+p)
	ix := l.Index()
	if len(ix.Manifests) != 2 || ix.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "a:1" ||
		ix.Manifests[1].Annotations != nil || ix.Manifests[0].MediaType != MediaTypeDockerManifest {
		t.Fatalf("Index() = %+v", ix)
	}
	im := mustResolve(t, l, Select{Ref: "a:2"})
	if im.RefName != "a:2" || im.ManifestDescriptor.Digest != ix.Manifests[0].Digest {
		t.Errorf("a:2: %q %s", im.RefName, im.ManifestDescriptor.Digest)
	}
	mb, err := l.ReadBlob(im.ManifestDescriptor, 1<<16)
	if err != nil || !bytes.HasPrefix(mb, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"`)) {
		t.Errorf("synthesized manifest %s, %v", mb, err)
	}
	if im := mustResolve(t, l, Select{Ref: "@1"}); im.RefName != "" {
		t.Errorf("@1: RefName %q", im.RefName)
	}
}
