package ociclip

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sort"

	"github.com/beam-cloud/clip/pkg/common"
	"github.com/ociclip/ociclip/layerz"
)

// ErrMismatch: a file read through the index differs from the sequential
// replay of its layer.
var ErrMismatch = errors.New("file content mismatch")

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
	// The replay runs alongside the reads through the index: both inflate
	// every layer once.
	type replayResult struct {
		w   *replayed
		err error
	}
	replayDone := make(chan replayResult, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Both sides hash each file with the same random seed: a 64-bit keyed
	// hash (maphash, several times faster than sha256) that no layer can be
	// made to collide in, since the seed is drawn for this run.
	seed := maphash.MakeSeed()
	go func() {
		w, err := r.replay(rctx, seed)
		replayDone <- replayResult{w, err}
	}()
	res := &VerifyResult{}
	// Read the files in layer order (by layer, then by offset), so that the
	// span engine inflates each span once and its read-ahead runs ahead of
	// the reads.
	files := make([]*common.ClipNode, 0, len(r.a.Nodes))
	for _, n := range r.a.Nodes {
		if n.NodeType == common.FileNode && n.Remote != nil {
			files = append(files, n)
		}
	}
	sort.SliceStable(files, func(i, j int) bool {
		a, b := files[i].Remote, files[j].Remote
		if a.LayerDigest != b.LayerDigest {
			return a.LayerDigest < b.LayerDigest
		}
		return a.UOffset < b.UOffset
	})
	sums := make([]uint64, len(files))
	rerrs := make([]error, len(files))
	buf := make([]byte, 1<<20)
	for i, n := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Files++
		// Hash in chunks: the node's length is the archive's claim, not
		// something to allocate before it is checked.
		var h maphash.Hash
		h.SetSeed(seed)
		var rerr error
		for off := int64(0); off < n.Remote.ULength; {
			k, err := r.readAt(n, buf[:min(int64(len(buf)), n.Remote.ULength-off)], off)
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
		sums[i] = h.Sum64()
		rerrs[i] = rerr
	}
	rr := <-replayDone
	if rr.err != nil {
		return nil, rr.err
	}
	want := rr.w
	for _, d := range r.a.Storage.Layers {
		if err := want.damaged[d]; err != nil && !slices.Contains(res.DamagedLayers, d) {
			res.DamagedLayers = append(res.DamagedLayers, d)
			if report != nil {
				report(d, err)
			}
		}
	}
	for i, n := range files {
		if want.damaged[n.Remote.LayerDigest] != nil {
			res.Files--
			res.Unchecked++
			continue
		}
		rerr, got := rerrs[i], sums[i]
		if rerr == nil {
			exp, ok := want.content(n)
			switch {
			case !ok:
				rerr = fmt.Errorf("%w: %s: the replay of layer %s has no %d-byte file at offset %d", ErrMismatch, n.Path, n.Remote.LayerDigest, n.Remote.ULength, n.Remote.UOffset)
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
		sort.Strings(res.Mismatches)
		return res, fmt.Errorf("%w: %d of %d files (first: %s)", ErrMismatch, len(res.Mismatches), res.Files, res.Mismatches[0])
	}
	if len(res.DamagedLayers) > 0 {
		return res, fmt.Errorf("%d of %d layers damaged, first: %w", len(res.DamagedLayers), len(r.a.Storage.Layers), want.damaged[res.DamagedLayers[0]])
	}
	return res, nil
}

// replayed holds, per layer, the size and hash of every regular file
// entry of a sequential read of the layer, by the offset of its data in the
// uncompressed stream: a node is checked against the entry its data
// location names, wherever the merge placed it (symlinked parents, hard
// links).
type replayed struct {
	files   map[string]map[int64]replayedFile // layer digest -> data offset -> file
	damaged map[string]error                  // layer digest -> why it could not be replayed
}

// replayedFile is one regular file entry of a replayed layer.
type replayedFile struct {
	size int64
	hash uint64
}

// content returns the hash of the entry whose data n's location names.
func (w *replayed) content(n *common.ClipNode) (uint64, bool) {
	f, ok := w.files[n.Remote.LayerDigest][n.Remote.UOffset]
	if !ok || f.size != n.Remote.ULength {
		return 0, false
	}
	return f.hash, true
}

func (r *Reader) replay(ctx context.Context, seed maphash.Seed) (*replayed, error) {
	w := &replayed{files: map[string]map[int64]replayedFile{}, damaged: map[string]error{}}
	for i, d := range r.a.Storage.Layers {
		if _, done := w.files[d]; done || w.damaged[d] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := r.replayVerified(ctx, i+1, len(r.a.Storage.Layers), d, seed)
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
// at all, told by its magic) with archive/tar and returns every regular
// file's size and keyed hash by the offset of its data in the uncompressed
// stream (counted under archive/tar, which reads headers block by block).
func replayLayer(r io.Reader, seed maphash.Seed) (map[int64]replayedFile, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(layerz.SniffLen)
	comp, _ := layerz.Sniff(magic)
	// layerz.NewReader caps zstd windows as tarindex does, so a hostile
	// frame header cannot make the replay allocate more than indexing did.
	rd, err := layerz.NewReader(br, comp)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	files := map[int64]replayedFile{}
	cr := &layerz.CountingReader{R: rd}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) && len(files) > 0 {
			// Some writers (umoci insert) omit the end-of-archive blocks.
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		off := cr.N
		var hs maphash.Hash
		hs.SetSeed(seed)
		n, err := io.Copy(&hs, tr)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		files[off] = replayedFile{size: n, hash: hs.Sum64()}
	}
}
