package ociread

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeGGCRTarball writes, with go-containerregistry's tarball package, a
// docker save archive at p holding the only image of each layout directory
// under its tag, and returns the RepoTags as written in manifest.json.
func writeGGCRTarball(t *testing.T, p string, tagToDir map[string]string) []string {
	t.Helper()
	refs := map[name.Reference]ggcrv1.Image{}
	for tag, dir := range tagToDir {
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no manifest.json in the ggcr tarball: %v", err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var man []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&man); err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, e := range man {
			tags = append(tags, e.RepoTags...)
		}
		return tags
	}
}
