package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/beam-cloud/clip/pkg/clip"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/blobs"
	"github.com/ociclip/ociclip/clipstorage"
	"github.com/ociclip/ociclip/spans"
)

const mountUsage = `Usage: ociclip mount OUT.clip MOUNTPOINT [--layout SOURCE] [--registry REF]
                     [--cache-dir DIR] [--cache-size SIZE]

Mount the image read-only at MOUNTPOINT with clip's FUSE filesystem, reading
files through ociclip's index: a read fetches only the compressed bytes of the
spans it needs (from the resume point before it to the next one), inflates
them once and verifies their checksums. Layer blobs come from the local
layout (--layout) or from the registry recorded in the archive (--registry
overrides it: REGISTRY/REPOSITORY). Runs in the foreground; SIGINT or SIGTERM
unmounts cleanly.
`

func runMount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mount", mountUsage, stdout)
	layout := fs.String("layout", "", "read layer blobs from this image source: `oci:DIR`, oci-archive:FILE, dir:DIR, docker-archive:FILE or DIR")
	registry := fs.String("registry", "", "read layer blobs from this registry repository (`REGISTRY/REPOSITORY`) instead of the archive's")
	cacheDir := fs.String("cache-dir", "", "keep inflated spans in files under `DIR` (across mounts)")
	cacheSize := fs.String("cache-size", "128MiB", "memory for inflated spans (`SIZE`: bytes, or with a K, M or G suffix; 0: none)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: want OUT.clip MOUNTPOINT", errUsage)
	}
	if *layout != "" && *registry != "" {
		return fmt.Errorf("%w: --layout and --registry exclude each other", errUsage)
	}
	size, err := parseSize(*cacheSize)
	if err != nil {
		return fmt.Errorf("%w: --cache-size: %v", errUsage, err)
	}
	if size == 0 {
		size = -1 // no memory cache
	}
	if err := clipstorage.CheckFUSE(); err != nil {
		return err
	}
	if st, err := os.Stat(pos[1]); err != nil || !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", pos[1])
	}
	// clip's filesystem logs every FUSE call at debug level through
	// zerolog's global logger.
	if err := clip.SetLogLevel("warn"); err != nil {
		return err
	}
	a, err := archive.ReadFile(pos[0])
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags)
	var src spans.Source
	local := false
	switch {
	case *layout != "":
		if _, err := parseSource(*layout, ""); err != nil {
			return err
		}
		l, err := blobs.OpenLayout(*layout)
		if err != nil {
			return err
		}
		src, local = l, true
	default:
		repo := *registry
		if repo == "" {
			if a.Storage.RegistryURL == "" || a.Storage.Repository == "" {
				return fmt.Errorf("%w: the archive records no registry: give --layout or --registry", errUsage)
			}
			repo = a.Storage.RegistryURL + "/" + a.Storage.Repository
		}
		r, err := blobs.NewRegistry(repo, blobs.RegistryOptions{Logf: logger.Printf})
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		src = r
	}
	if *cacheDir != "" {
		if err := os.MkdirAll(*cacheDir, 0o755); err != nil {
			return err
		}
	}
	s, err := clipstorage.Open(pos[0], src, clipstorage.Options{
		Local: local,
		Spans: spans.Options{CacheSize: size, CacheDir: *cacheDir, Logf: logger.Printf},
	})
	if err != nil {
		return err
	}
	m, err := clipstorage.MountAt(s, pos[1])
	if err != nil {
		s.Cleanup()
		return err
	}
	fmt.Fprintf(stderr, "ociclip mount: %s mounted read-only at %s; Ctrl-C or SIGTERM unmounts\n", pos[0], pos[1])
	select {
	case <-ctx.Done():
		if err := m.Unmount(30 * time.Second); err != nil {
			return fmt.Errorf("unmounting %s: %w (try fusermount3 -u %s)", pos[1], err, pos[1])
		}
		st := s.Stats()
		fmt.Fprintf(stderr, "ociclip mount: unmounted %s (%s fetched, %s inflated)\n", pos[1], humanBytes(st.Fetched), humanBytes(st.Inflated))
	case <-m.Done():
		fmt.Fprintf(stderr, "ociclip mount: %s was unmounted\n", pos[1])
	}
	return nil
}
