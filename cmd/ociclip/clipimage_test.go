package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/registrytest"
	"github.com/ociclip/ociclip/internal/testenv"
)

// Every local form of ImageRef a user tries gives, through the clip-shaped
// entry point, the archive `ociclip index` writes for the same image.
func TestCreateFromOCIImageLocalForms(t *testing.T) {
	const storage = "docker.io/library/busybox:1.35"
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "ubuntu") // as the image service names it
	abs, err := filepath.Abs(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, layout); err != nil {
		t.Fatal(err)
	}
	cliIndex := func(src string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "cli.clip")
		if code, _, stderr := runCLI(t, "index", "-q", src, "-o", out, "--storage-ref", storage); code != 0 {
			t.Fatalf("ociclip index %s: %s", src, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := cliIndex("oci:" + layout + ":1.35")
	forms := map[string][]byte{
		"oci:" + layout + ":1.35":          want,
		"oci:" + layout:                    want,
		"oci-layout://" + layout + ":1.35": want,
		layout + ":1.35":                   want,
		layout:                             want,
	}
	// Relative forms, resolved against the working directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, layout)
	if err != nil {
		t.Fatal(err)
	}
	forms["./"+rel+":1.35"] = want
	if _, err := exec.LookPath("skopeo"); err == nil {
		for _, dest := range []string{"oci-archive:" + tmp + "/bb.tar:1.35", "dir:" + tmp + "/bbdir", "docker-archive:" + tmp + "/bb-docker.tar:busybox:1.35"} {
			if out, err := exec.Command("skopeo", "copy", "-q", "oci:"+layout+":1.35", dest).CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy to %s: %v\n%s", dest, err, out)
			}
			forms[dest] = cliIndex(dest)
		}
		// dir: and oci-archive: carry the layout's blobs unchanged.
		for _, src := range []string{"oci-archive:" + tmp + "/bb.tar:1.35", "dir:" + tmp + "/bbdir"} {
			if !bytes.Equal(forms[src], want) {
				t.Errorf("ociclip index %s differs from the oci: layout's archive", src)
			}
		}
	} else if testenv.CI() {
		t.Fatal("skopeo is required with CI=true")
	} else {
		t.Log("skopeo not installed: oci-archive:, dir: and docker-archive: forms not tested")
	}
	for ref, want := range forms {
		t.Run(ref, func(t *testing.T) {
			if src, ok := ociclip.LocalImageSource(ref); !ok {
				t.Fatalf("LocalImageSource(%q) = %q, false; want a local source", ref, src)
			}
			out := filepath.Join(t.TempDir(), "api.clip")
			progress := make(chan clip.OCIIndexProgress, 64)
			err := ociclip.CreateFromOCIImage(context.Background(), clip.CreateFromOCIImageOptions{
				ImageRef: ref, StorageImageRef: storage, OutputPath: out, CheckpointMiB: 2, ProgressChan: progress,
			})
			if err != nil {
				t.Fatalf("CreateFromOCIImage(%q): %v", ref, err)
			}
			close(progress)
			completed := 0
			for p := range progress {
				if p.Stage == ociclip.StageCompleted {
					completed++
				}
			}
			if completed != 3 {
				t.Errorf("%d completed events on clip's progress channel, want 3", completed)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("CreateFromOCIImage(%q) wrote %d bytes that differ from `ociclip index` (%d bytes)", ref, len(got), len(want))
			}
		})
	}
}

// A registry reference goes to clip's own indexer, unchanged: clip fetches
// the image from the registry, and ociclip's extra options are not used.
func TestCreateFromOCIImageRegistryRefGoesToClip(t *testing.T) {
	if err := clip.SetLogLevel("error"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // anonymous: no credential helper
	reg := registrytest.Start(t)
	ref := reg.PushLayout(t, busybox, "1.35", "test/busybox:1.35")
	if src, ok := ociclip.LocalImageSource(ref); ok {
		t.Fatalf("LocalImageSource(%q) = %q, true; want a registry reference", ref, src)
	}
	before := reg.BlobGets("")
	out := filepath.Join(t.TempDir(), "clip.clip")
	applied := false
	err := ociclip.CreateFromOCIImage(context.Background(), clip.CreateFromOCIImageOptions{ImageRef: ref, OutputPath: out},
		func(*ociclip.Options) { applied = true })
	if err != nil {
		t.Fatalf("CreateFromOCIImage(%q): %v", ref, err)
	}
	if applied {
		t.Error("an ImageOption was applied to a registry reference")
	}
	if n := reg.BlobGets("") - before; n < 3 {
		t.Errorf("clip fetched %d blobs from the registry, want the config and 3 layers", n)
	}
	md, err := clip.NewClipArchiver().ExtractMetadata(out)
	if err != nil {
		t.Fatalf("clip ExtractMetadata: %v", err)
	}
	info, ok := md.StorageInfo.(common.OCIStorageInfo)
	if !ok {
		t.Fatalf("storage info is %T, want common.OCIStorageInfo", md.StorageInfo)
	}
	if info.RegistryURL != reg.Host() || info.Repository != "test/busybox" || info.Reference != "1.35" || len(info.Layers) != 3 {
		t.Errorf("clip recorded %s/%s:%s with %d layers, want %s/test/busybox:1.35 with 3", info.RegistryURL, info.Repository, info.Reference, len(info.Layers), reg.Host())
	}
}
