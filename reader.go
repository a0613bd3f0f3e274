package ociclip

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sync"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/ociread"
)

// ErrMismatch: a file read through the index differs from the sequential
// replay of its layer.
var ErrMismatch = errors.New("file content mismatch")

// Reader reads the files of a .clip archive from the layer blobs of the
// local layout it was made from, through the archive's checkpoints.
type Reader struct {
	*archive.FileReader
	Archive *archive.Archive
	lb      *layoutBlobs
}

// OpenReader opens the archive at archivePath and the image source that
// holds its layer blobs: a layout directory, or any source string
// CreateFromOCILayout accepts ("oci:DIR", "oci-archive:FILE", "dir:DIR",
// "docker-archive:FILE"; a ref part is ignored).
func OpenReader(archivePath, source string) (*Reader, error) {
	a, err := archive.ReadFile(archivePath)
	if err != nil {
		return nil, err
	}
	src, err := ociread.ParseSource(source)
	if err != nil {
		return nil, err
	}
	l, err := ociread.OpenSource(src, ociread.OpenOptions{})
	if err != nil {
		return nil, err
	}
	lb := &layoutBlobs{l: l, open: map[string]io.Closer{}}
	return &Reader{FileReader: archive.NewFileReader(a, lb), Archive: a, lb: lb}, nil
}

// Close releases the open blob files.
func (r *Reader) Close() error {
	lb := r.lb
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var first error
	for _, f := range lb.open {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	lb.open = map[string]io.Closer{}
	if err := lb.l.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// layoutBlobs opens layer blobs of a layout by digest.
type layoutBlobs struct {
	l    *ociread.Layout
	mu   sync.Mutex
	open map[string]io.Closer
	ras  map[string]io.ReaderAt
	size map[string]int64
}

func (b *layoutBlobs) OpenLayer(d string) (io.ReaderAt, int64, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		return nil, 0, fmt.Errorf("layer digest %q: %w", d, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ras == nil {
		b.ras, b.size = map[string]io.ReaderAt{}, map[string]int64{}
	}
	if ra, ok := b.ras[d]; ok {
		return ra, b.size[d], nil
	}
	ra, size, c, err := b.l.OpenBlobAt(dg)
	if err != nil {
		return nil, 0, err
	}
	b.ras[d], b.size[d], b.open[d] = ra, size, c
	return ra, size, nil
}

// VerifyResult summarises Verify.
type VerifyResult struct {
	Files      int   // regular files checked
	Bytes      int64 // bytes read through the index
	Mismatches []string
	// DamagedLayers lists the digests of the layers that could not be
	// replayed; Unchecked counts their files, which were not checked.
	DamagedLayers []string
	Unchecked     int
}

// Verify reads every regular file through the index and compares its bytes
// with an independent, plain sequential replay of its layer (Go's gzip/zstd
// and archive/tar, no offsets). Each mismatch is reported by path through
// report (which may be nil) and collected; so is each layer that cannot be
// replayed (its blob does not match its digest or size, or does not parse),
// by its digest with an error that wraps ErrLayerDamaged and names the layer
// ("layer 2/3 sha256:…"), and its files are not
// checked. The error is non-nil when any file mismatched or could not be
// read, or any layer is damaged.
func (r *Reader) Verify(ctx context.Context, report func(path string, err error)) (*VerifyResult, error) {
	want, err := r.replay(ctx)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{}
	for _, d := range r.Archive.Storage.Layers {
		if err := want.damaged[d]; err != nil && !slices.Contains(res.DamagedLayers, d) {
			res.DamagedLayers = append(res.DamagedLayers, d)
			if report != nil {
				report(d, err)
			}
		}
	}
	// Reads of twice the default span keep the re-inflation from each
	// read's checkpoint to about a quarter of the file.
	buf := make([]byte, 8<<20)
	for _, n := range r.Archive.Nodes {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if n.NodeType != common.FileNode || n.Remote == nil {
			continue
		}
		if want.damaged[n.Remote.LayerDigest] != nil {
			res.Unchecked++
			continue
		}
		res.Files++
		// Hash in chunks: the node's length is the archive's claim, not
		// something to allocate before it is checked.
		h := sha256.New()
		var rerr error
		for off := int64(0); off < n.Remote.ULength; {
			k, err := r.ReadAt(n, buf[:min(int64(len(buf)), n.Remote.ULength-off)], off)
			h.Write(buf[:k])
			off += int64(k)
			res.Bytes += int64(k)
			if err != nil && err != io.EOF {
				rerr = err
				break
			}
			if k == 0 {
				rerr = fmt.Errorf("%w: %s: no data at offset %d", ErrMismatch, n.Path, off)
				break
			}
		}
		if rerr == nil {
			var got [32]byte
			copy(got[:], h.Sum(nil))
			exp, ok := want.content(n)
			switch {
			case !ok:
				rerr = fmt.Errorf("%w: no file at %s in the replay of layer %s", ErrMismatch, n.Path, n.Remote.LayerDigest)
			case exp != got:
				rerr = fmt.Errorf("%w: %s: %d bytes at offset %d of layer %s differ from the replay", ErrMismatch, n.Path, n.Remote.ULength, n.Remote.UOffset, n.Remote.LayerDigest)
			}
		}
		if rerr != nil {
			res.Mismatches = append(res.Mismatches, n.Path)
			if report != nil {
				report(n.Path, rerr)
			}
		}
	}
	if len(res.Mismatches) > 0 {
		return res, fmt.Errorf("%w: %d of %d files (first: %s)", ErrMismatch, len(res.Mismatches), res.Files, res.Mismatches[0])
	}
	if len(res.DamagedLayers) > 0 {
		return res, fmt.Errorf("%d of %d layers damaged, first: %w", len(res.DamagedLayers), len(r.Archive.Storage.Layers), want.damaged[res.DamagedLayers[0]])
	}
	return res, nil
}

// replayed holds, per layer, the sha256 of every regular file entry and the
// hard link entries, from a sequential read of the layer.
type replayed struct {
	files   map[string]map[string][32]byte // layer digest -> clean path -> sha256
	links   map[string][]string            // clean path -> hard link targets, all layers
	damaged map[string]error               // layer digest -> why it could not be replayed
}

func (w *replayed) content(n *common.ClipNode) ([32]byte, bool) {
	files := w.files[n.Remote.LayerDigest]
	seen := map[string]bool{}
	pending := []string{n.Path}
	for len(pending) > 0 {
		p := pending[0]
		pending = pending[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		if h, ok := files[p]; ok {
			return h, true
		}
		pending = append(pending, w.links[p]...)
	}
	return [32]byte{}, false
}

func (r *Reader) replay(ctx context.Context) (*replayed, error) {
	w := &replayed{files: map[string]map[string][32]byte{}, links: map[string][]string{}, damaged: map[string]error{}}
	for i, d := range r.Archive.Storage.Layers {
		if _, done := w.files[d]; done || w.damaged[d] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := r.replayVerified(ctx, i+1, len(r.Archive.Storage.Layers), d, w.links)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			w.damaged[d] = err
			continue
		}
		w.files[d] = files
	}
	return w, nil
}

// replayLayer reads the layer blob from r (compressed by gzip, zstd or not
// at all, told by its magic) and returns the sha256 of every regular file
// by clean path, adding its hard links to links.
func replayLayer(r io.Reader, links map[string][]string) (map[string][32]byte, error) {
	sr := bufio.NewReader(r)
	magic, _ := sr.Peek(4)
	var rd io.Reader = sr
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(sr)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	case isZstd(magic):
		// The same window cap as tarindex (128 MiB), so a hostile frame
		// header cannot make the replay allocate more than indexing did.
		zr, err := zstd.NewReader(sr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27), zstd.WithDecoderMaxMemory(1<<27), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	}
	files := map[string][32]byte{}
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) && len(files) > 0 {
			// Some writers (umoci insert) omit the end-of-archive blocks.
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			hs := sha256.New()
			if _, err := io.Copy(hs, tr); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, err
			}
			var sum [32]byte
			copy(sum[:], hs.Sum(nil))
			files[p] = sum
		case tar.TypeLink:
			links[p] = append(links[p], path.Clean("/"+h.Linkname))
		}
	}
}

// isZstd reports a zstd frame or skippable frame magic number.
func isZstd(magic []byte) bool {
	if len(magic) < 4 {
		return false
	}
	m := binary.LittleEndian.Uint32(magic)
	return m == 0xFD2FB528 || m&0xFFFFFFF0 == 0x184D2A50
}
