package clipstorage_test

import (
	"log"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/spans"
)

// How an image service mounts an archive with clip's own filesystem and
// ociclip's storage (compiled, not run: it needs a registry and FUSE).
func Example() {
	src, err := blobs.NewRegistry("registry.example.com/team/app", blobs.RegistryOptions{Logf: log.Printf})
	if err != nil {
		log.Fatal(err)
	}
	s, err := clipstorage.Open("app.clip", src, clipstorage.Options{
		Spans: spans.Options{CacheSize: 256 << 20, CacheDir: "/var/cache/ociclip", Logf: log.Printf},
	})
	if err != nil {
		log.Fatal(err)
	}
	cfs, err := clip.NewFileSystem(s, clip.ClipFileSystemOpts{})
	if err != nil {
		log.Fatal(err)
	}
	root, err := cfs.Root()
	if err != nil {
		log.Fatal(err)
	}
	server, err := fuse.NewServer(fs.NewNodeFS(root, &fs.Options{}), "/mnt/app",
		&fuse.MountOptions{Options: []string{"ro"}, MaxBackground: 512, MaxReadAhead: 128 << 10})
	if err != nil {
		log.Fatal(err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		log.Fatal(err)
	}
	// ... serve the container; then:
	server.Unmount()
	s.Cleanup()
}
