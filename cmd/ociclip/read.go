package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
)

const catUsage = `Usage: ociclip cat OUT.clip PATH --layout oci:DIR [--offset N] [--length N]

Write a file of the image to stdout, read through the archive's index from the
layer blobs of the local layout: a gzip layer is inflated from the nearest
resumable checkpoint (at most one span), a zstd layer from the start of the
frame holding the data, an uncompressed layer is read in place. Symlinks are
followed. The bytes are verified against the checksums recorded at indexing.
`

const verifyUsage = `Usage: ociclip verify OUT.clip --layout oci:DIR

Read every regular file through the archive's index and compare its bytes with
a plain sequential replay of its layer (Go's gzip/zstd and archive/tar). Prints
each mismatch by path; exits 1 if any.
`

// layoutDir checks the --layout source holding the layer blobs.
func layoutDir(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: --layout oci:DIR is required", errUsage)
	}
	if _, err := parseSource(s, ""); err != nil {
		return "", err
	}
	return s, nil
}

func runCat(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cat", catUsage, stderr)
	layout := fs.String("layout", "", "the image source holding the layer blobs: `oci:DIR`, oci-archive:FILE, dir:DIR, docker-archive:FILE or DIR")
	offset := fs.Int64("offset", 0, "start at this byte of the file")
	length := fs.Int64("length", -1, "write at most this many bytes (-1: to the end)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return fmt.Errorf("%w: want OUT.clip PATH", errUsage)
	}
	dir, err := layoutDir(*layout)
	if err != nil {
		return err
	}
	if *offset < 0 {
		return fmt.Errorf("%w: --offset must not be negative", errUsage)
	}
	r, err := ociclip.OpenReader(pos[0], dir)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := r.Node(pos[1])
	if err != nil {
		return err
	}
	if n.NodeType != common.FileNode || n.Remote == nil {
		return fmt.Errorf("%s is a %s, not a regular file", pos[1], n.NodeType)
	}
	sr, err := r.OpenNode(n)
	if err != nil {
		return err
	}
	end := sr.Size()
	if *length >= 0 && *offset+*length < end {
		end = *offset + *length
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	for off := *offset; off < end; {
		m := min(int64(chunk), end-off)
		// Reads of 1 MiB through the span engine: each span is inflated once.
		k, err := sr.ReadAt(buf[:m], off)
		if err != nil && err != io.EOF {
			return err
		}
		if _, werr := stdout.Write(buf[:k]); werr != nil {
			return werr
		}
		off += int64(k)
		if k == 0 {
			break
		}
	}
	return nil
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifyUsage, stderr)
	layout := fs.String("layout", "", "the image source holding the layer blobs: `oci:DIR`, oci-archive:FILE, dir:DIR, docker-archive:FILE or DIR")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want OUT.clip", errUsage)
	}
	dir, err := layoutDir(*layout)
	if err != nil {
		return err
	}
	r, err := ociclip.OpenReader(pos[0], dir)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Verify(ctx, func(p string, err error) {
		fmt.Fprintf(stdout, "MISMATCH %s: %v\n", p, strings.ReplaceAll(err.Error(), "\n", " "))
	})
	if res != nil {
		fmt.Fprintf(stdout, "verified %d files, %s read through the index, %d mismatches\n", res.Files, humanBytes(res.Bytes), len(res.Mismatches))
	}
	return err
}
