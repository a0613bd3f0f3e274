package ociclip_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ociclip/ociclip"
)

// Index the busybox layout shipped in testdata (three gzip layers written by
// umoci) into a clip v2 archive.
func ExampleCreateFromOCILayout() {
	dir, err := os.MkdirTemp("", "ociclip-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	res, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		Source:          "oci:testdata/busybox:1.35",
		StorageImageRef: "docker.io/library/busybox:1.35",
		OutputPath:      filepath.Join(dir, "busybox.clip"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("manifest:", res.ManifestDigest)
	fmt.Println("layers:", res.Layers)
	fmt.Printf("nodes: %d (%d files, %d dirs, %d symlinks, %d hard links)\n", res.Nodes, res.Files, res.Dirs, res.Symlinks, res.HardLinks)
	fmt.Printf("storage: %s/%s:%s\n", res.StorageRef.RegistryURL, res.StorageRef.Repository, res.StorageRef.Reference)
	fmt.Println("warnings:", len(res.Warnings))
	// Output:
	// manifest: sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9
	// layers: 3
	// nodes: 43 (18 files, 20 dirs, 5 symlinks, 3 hard links)
	// storage: index.docker.io/library/busybox:1.35
	// warnings: 0
}

// With a cache directory, a second run (of the same image, or of another one
// sharing layers) takes the layers' index from the cache without reading
// their blobs, and writes the same bytes.
func ExampleOptions_cacheDir() {
	dir, err := os.MkdirTemp("", "ociclip-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	opts := ociclip.Options{
		LayoutPath:      "testdata/busybox",
		LayoutRef:       "1.35",
		StorageImageRef: "docker.io/library/busybox:1.35",
		CacheDir:        filepath.Join(dir, "cache"),
	}
	var outputs []string
	for _, name := range []string{"cold.clip", "warm.clip"} {
		opts.OutputPath = filepath.Join(dir, name)
		res, err := ociclip.CreateFromOCILayout(context.Background(), opts)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d of %d layers from the cache\n", name, res.CachedLayers, res.Layers)
		b, err := os.ReadFile(opts.OutputPath)
		if err != nil {
			log.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	fmt.Println("same bytes:", outputs[0] == outputs[1])
	// Output:
	// cold.clip: 0 of 3 layers from the cache
	// warm.clip: 3 of 3 layers from the cache
	// same bytes: true
}

// Read a file of the image through the index, straight from the layer blobs
// of the layout (inflating at most one span of the gzip layer).
func ExampleOpenReader() {
	dir, err := os.MkdirTemp("", "ociclip-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	archivePath := filepath.Join(dir, "busybox.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: "testdata/busybox", LayoutRef: "1.35", OutputPath: archivePath,
	}); err != nil {
		log.Fatal(err)
	}

	r, err := ociclip.OpenReader(archivePath, "oci:testdata/busybox")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	passwd, err := fs.ReadFile(r, "etc/passwd") // Reader is an fs.FS
	if err != nil {
		log.Fatal(err)
	}
	first, _, _ := strings.Cut(string(passwd), "\n")
	fmt.Println(first)
	n, err := r.Node("/bin/sh") // clip's node; symlinks are followed
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n.Path, n.NodeType, n.Attr.Size, "bytes")
	// Output:
	// root:x:0:0:root:/root:/bin/sh
	// /bin/busybox file 1982256 bytes
}

// Progress starts with the fields of clip's OCIIndexProgress, so an image
// service that reports clip a2a14fb's progress type converts each event with
// Progress.Clip; the byte-level fields follow.
func ExampleProgress() {
	dir, err := os.MkdirTemp("", "ociclip-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	progress := make(chan ociclip.Progress, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range progress {
			cp := p.Clip() // clip a2a14fb's type; p also has BytesProcessed, BytesTotal, ...
			if cp.Stage == ociclip.StageCompleted {
				fmt.Printf("layer %d/%d %s: %s, %d entries so far\n", cp.LayerIndex, cp.TotalLayers, cp.LayerDigest[:19], cp.Message, cp.FilesIndexed)
			}
		}
	}()
	_, err = ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath:   "testdata/busybox",
		OutputPath:   filepath.Join(dir, "busybox.clip"),
		ProgressChan: progress, // never closed by ociclip
		Concurrency:  1,        // one layer at a time: events in manifest order
	})
	close(progress)
	<-done
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// layer 1/3 sha256:bdbac3efa91a: Completed layer 1/3 (44 entries total), 44 entries so far
	// layer 2/3 sha256:6f7078209b61: Completed layer 2/3 (56 entries total), 56 entries so far
	// layer 3/3 sha256:42906f85684d: Completed layer 3/3 (71 entries total), 71 entries so far
}

// Version reports the clip version ociclip targets and the formats it writes.
func ExampleVersion() {
	v := ociclip.Version()
	fmt.Println(v.ClipModule, v.ClipVersion)
	fmt.Println("clip header format", v.ClipFormatVersion, "extension", v.ExtensionVersion)
	// Output:
	// github.com/beam-cloud/clip v0.0.0-20260126181811-a2a14fb37f70
	// clip header format 1 extension 3
}
