package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/outfile"
)

const catUsage = `Usage: ociclip cat OUT.clip PATH --layout oci:DIR [--offset N] [--length N] [-o FILE]

Write a file of the image to stdout (or FILE), read through the archive's index
from the layer blobs of the local layout: a gzip layer is inflated from the
nearest resumable checkpoint (at most one span), a zstd layer from the start of
the frame holding the data, an uncompressed layer is read in place. Symlinks
are followed. The bytes are verified against the checksums recorded at
indexing before any is written.

On stdout the bytes are written in verified pieces of up to 4 MiB: a file up
to 4 MiB is written whole or not at all, but a larger one that fails midway
(a damaged blob) leaves a verified prefix on stdout, and the exit status is 1.
With -o FILE the file is written atomically, with index's -o rules: on any
failure FILE is left as it was.
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
	fs := newFlagSet("cat", catUsage, stdout)
	layout := fs.String("layout", "", "the image source holding the layer blobs: `oci:DIR`, oci-archive:FILE, dir:DIR, docker-archive:FILE or DIR")
	offset := fs.Int64("offset", 0, "start at this byte of the file")
	length := fs.Int64("length", -1, "write at most this many bytes (-1: to the end)")
	out := fs.String("o", "", "write to `FILE` atomically instead of stdout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
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
	copyOut := func(w io.Writer) error { return catRange(w, sr, *offset, end) }
	if *out == "" || outputFor(*out, stdout, stderr).stream != nil {
		return copyOut(stdout)
	}
	return withOutputHint(outfile.Write(*out, copyOut))
}

// catChunk is the most cat reads (and verifies) before writing.
const catChunk = 4 << 20

// catRange writes bytes [off, end) of a file to w, read through the index
// in verified pieces of up to catChunk (each read inflates from its resume
// point).
func catRange(w io.Writer, sr *io.SectionReader, off, end int64) error {
	buf := make([]byte, min(catChunk, max(end-off, 0)))
	for off < end {
		m := min(int64(len(buf)), end-off)
		k, err := sr.ReadAt(buf[:m], off)
		if err != nil && err != io.EOF {
			return err
		}
		if _, werr := w.Write(buf[:k]); werr != nil {
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
	fs := newFlagSet("verify", verifyUsage, stdout)
	layout := fs.String("layout", "", "the image source holding the layer blobs: `oci:DIR`, oci-archive:FILE, dir:DIR, docker-archive:FILE or DIR")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
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
		if errors.Is(err, ociclip.ErrLayerDamaged) {
			fmt.Fprintf(stdout, "DAMAGED %s\n", oneLine(err))
			return
		}
		fmt.Fprintf(stdout, "MISMATCH %s: %s\n", p, oneLine(err))
	})
	if res != nil {
		printVerifySummary(stdout, res)
	}
	return err
}
