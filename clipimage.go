package ociclip

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/beam-cloud/clip/pkg/clip"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/ociread"
)

// ImageOption adjusts the Options that CreateFromOCIImage builds from clip's
// options, for what clip a2a14fb's options type cannot say (a layer cache,
// concurrency, the reference mode, a logger). It is not applied when the
// image reference goes to clip's own indexer.
type ImageOption func(*Options)

// CreateFromOCIImage is a drop-in for clip.CreateFromOCIImage (clip
// a2a14fb's options type, unchanged), so that an image service switches by
// changing the import of the call. When o.ImageRef names a local image, the
// image is indexed from disk by CreateFromOCILayout; any other reference (a
// registry reference such as "docker.io/library/ubuntu:24.04" or
// "127.0.0.1:5000/repo@sha256:...") is handed to clip.CreateFromOCIImage
// unchanged, with o as given and extra not applied.
//
// Local forms of ImageRef (see LocalImageSource):
//
//	oci:/tmp/ubuntu:24.04           oci:/tmp/ubuntu (the layout's only image)
//	oci-layout:///tmp/ubuntu:24.04  /tmp/ubuntu:24.04, ./ubuntu:24.04
//	oci-archive:FILE[:REF]          docker-archive:FILE[:REF]   dir:DIR
//
// For a local image, o.StorageImageRef is the registry reference the
// archive records (the service's push target); when it is empty the archive
// records no registry, as CreateFromOCILayout does. o.CheckpointMiB,
// o.Platform, o.OutputPath and o.ProgressChan mean what they mean to clip
// (each Progress event converted with Progress.Clip); o.CredProvider is for
// registries and is not used. extra adjusts the resulting Options in order.
// The Result is not returned, as clip returns none: its warnings (no storage
// reference, a cache that failed, the archive's size) reach the
// Options.Logger an ImageOption sets, at level warn.
func CreateFromOCIImage(ctx context.Context, o clip.CreateFromOCIImageOptions, extra ...ImageOption) error {
	src, local := LocalImageSource(o.ImageRef)
	if !local {
		return clip.CreateFromOCIImage(ctx, o)
	}
	if o.CheckpointMiB < 0 || o.CheckpointMiB > math.MaxInt32 {
		return fmt.Errorf("%w: CheckpointMiB %d is out of range", ErrOptions, o.CheckpointMiB)
	}
	opts := Options{
		Source:          src,
		StorageImageRef: o.StorageImageRef,
		OutputPath:      o.OutputPath,
		CheckpointMiB:   int(o.CheckpointMiB),
		Platform:        ociPlatform(o.Platform),
	}
	for _, f := range extra {
		f(&opts)
	}
	if o.ProgressChan == nil {
		_, err := CreateFromOCILayout(ctx, opts)
		return err
	}
	ch := make(chan Progress)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range ch {
			select {
			case o.ProgressChan <- p.Clip():
			case <-ctx.Done():
			}
		}
	}()
	opts.ProgressChan = ch
	_, err := CreateFromOCILayout(ctx, opts)
	close(ch)
	<-done
	return err
}

// LocalImageSource tells whether ref, an ImageRef given to
// CreateFromOCIImage, names a local image, and returns it in the SOURCE
// syntax of Options.Source. Local are: the transports "oci:",
// "oci-archive:", "docker-archive:" and "dir:"; "oci-layout://PATH[:REF]"
// (containerd's and BuildKit's form, taken as oci:PATH[:REF]); a path that
// starts with "/", "./" or "../" (taken as oci:PATH[:REF]); and a relative
// path whose directory part (before a ":REF" or "@sha256:...") holds an
// OCI layout (an "oci-layout" file). Everything else is a registry
// reference; a local directory named like a Docker Hub repository, without
// an oci-layout file, is not taken for one.
func LocalImageSource(ref string) (string, bool) {
	if rest, ok := strings.CutPrefix(ref, "oci-layout://"); ok && rest != "" {
		return ociread.TransportOCI + ":" + rest, true
	}
	if tr, _, ok := strings.Cut(ref, ":"); ok {
		switch tr {
		case ociread.TransportOCI, ociread.TransportOCIArchive, ociread.TransportDockerArchive, ociread.TransportDir:
			return ref, true
		}
	}
	if strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") {
		return ociread.TransportOCI + ":" + ref, true
	}
	if ref == "" {
		return "", false
	}
	dir := ref
	if i := strings.IndexAny(dir, ":@"); i >= 0 {
		dir = dir[:i]
	}
	if fi, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil && fi.Mode().IsRegular() {
		return ociread.TransportOCI + ":" + ref, true
	}
	return "", false
}

// ociPlatform converts go-containerregistry's platform (clip's options) to
// the image-spec one (Options.Platform).
func ociPlatform(p *ggcrv1.Platform) *v1.Platform {
	if p == nil {
		return nil
	}
	return &v1.Platform{
		Architecture: p.Architecture, OS: p.OS, OSVersion: p.OSVersion,
		OSFeatures: p.OSFeatures, Variant: p.Variant,
	}
}
