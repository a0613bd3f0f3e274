package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"sort"

	"github.com/ociclip/ociclip/archive/internal/detgob"
	"github.com/ociclip/ociclip/layerz"
)

// ExtensionMagic starts ociclip's extension section, which follows clip's
// storage info. clip locates its sections through the header only, so it
// never reads these bytes.
var ExtensionMagic = [8]byte{'O', 'C', 'I', 'C', 'L', 'I', 'P', 'X'}

// ExtensionVersion is the version of the extension section written and
// read. Version 2 added the sha256 of clip's sections (header, index and
// storage info) to the section's header; version 3 stores each resume
// point's window compressed (layerz.ResumePoint.ZWindow) and the payload as
// a plain gob stream.
const ExtensionVersion uint32 = 3

// extensionHeaderLen is magic + version + payload length + sha256 of the
// payload + sha256 of clip's sections.
const extensionHeaderLen = 8 + 4 + 8 + sha256.Size + sha256.Size

// Extension holds what ociclip keeps beyond clip's format: resumable gzip
// checkpoints (with their windows) for random access into unmodified
// layers.
type Extension struct {
	Layers []LayerExtension
}

// LayerExtension is the random-access data of one layer.
type LayerExtension struct {
	Digest      string               // compressed layer digest
	DiffID      string               // sha256 of the uncompressed stream
	Compression string               // "gzip", "zstd" or "none"
	Size        int64                // compressed size
	USize       int64                // uncompressed size
	Points      []layerz.ResumePoint // sorted by UOff
	// ChunkSize and ChunkCRCs: the CRC-32C (Castagnoli) of every ChunkSize
	// bytes of the uncompressed stream (the last chunk may be shorter), so
	// that a reader can verify what it inflates from a checkpoint.
	ChunkSize int64
	ChunkCRCs []uint32
}

// extensionWire is the gob-encoded part of the payload: the layers with
// their points' windows left out (each is sent after the gob stream, not
// copied into it) and the length of each window, by layer and point.
type extensionWire struct {
	Layers     []LayerExtension
	WindowLens [][]uint32
}

// marshalSection encodes the section: the header (magic, version uint32
// LE, payload length uint64 LE, sha256 of the payload, clipSum: the sha256 of
// every byte before the section, clip's header, index and storage info) and
// the payload, returned in pieces to write one after the other: the length
// of the gob stream (uint64 LE), the gob stream of extensionWire, and every
// window (compressed one by one; compressing the payload again gained 0.3%),
// in layer and point order. The windows are written from where they are, so
// that encoding does not hold a second copy of them.
func (e *Extension) marshalSection(clipSum [sha256.Size]byte) (head []byte, payload [][]byte, err error) {
	w := extensionWire{Layers: make([]LayerExtension, len(e.Layers)), WindowLens: make([][]uint32, len(e.Layers))}
	var windows [][]byte
	for i, l := range e.Layers {
		points := make([]layerz.ResumePoint, len(l.Points))
		lens := make([]uint32, len(l.Points))
		for j, p := range l.Points {
			if len(p.ZWindow) > math.MaxUint32 {
				return nil, nil, fmt.Errorf("encoding extension: layer %s: a window of %d bytes", l.Digest, len(p.ZWindow))
			}
			lens[j] = uint32(len(p.ZWindow))
			windows = append(windows, p.ZWindow)
			p.ZWindow = nil
			points[j] = p
		}
		l.Points = points
		w.Layers[i], w.WindowLens[i] = l, lens
	}
	g, err := detgob.Marshal(&w)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding extension: %w", err)
	}
	payload = append(make([][]byte, 0, 2+len(windows)), binary.LittleEndian.AppendUint64(nil, uint64(len(g))), g)
	payload = append(payload, windows...)
	h := sha256.New()
	n := 0
	for _, b := range payload {
		h.Write(b)
		n += len(b)
	}
	head = make([]byte, 0, extensionHeaderLen)
	head = append(head, ExtensionMagic[:]...)
	head = binary.LittleEndian.AppendUint32(head, ExtensionVersion)
	head = binary.LittleEndian.AppendUint64(head, uint64(n))
	head = h.Sum(head)
	head = append(head, clipSum[:]...)
	return head, payload, nil
}

// parseExtension decodes the bytes after clip's sections, whose sha256 is
// clipSum. Bytes that do not start with the extension magic are an error:
// ociclip writes nothing else there. A clipSum other than the one recorded
// means clip's sections were changed.
func parseExtension(b []byte, clipSum [sha256.Size]byte) (*Extension, error) {
	if len(b) < extensionHeaderLen || !bytes.Equal(b[:8], ExtensionMagic[:]) {
		return nil, fmt.Errorf("%w: %d unknown bytes after the storage info", ErrCorruptArchive, len(b))
	}
	if v := binary.LittleEndian.Uint32(b[8:12]); v != ExtensionVersion {
		return nil, fmt.Errorf("%w: extension version %d, this ociclip reads %d", ErrCorruptArchive, v, ExtensionVersion)
	}
	n := binary.LittleEndian.Uint64(b[12:20])
	payload := b[extensionHeaderLen:]
	if n != uint64(len(payload)) {
		return nil, fmt.Errorf("%w: extension payload length %d, %d bytes present", ErrCorruptArchive, n, len(payload))
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[20:20+sha256.Size]) {
		return nil, fmt.Errorf("%w: extension checksum mismatch", ErrCorruptArchive)
	}
	if !bytes.Equal(clipSum[:], b[20+sha256.Size:extensionHeaderLen]) {
		return nil, fmt.Errorf("%w: the sha256 of the header, index and storage info differs from the one recorded in the extension section", ErrCorruptArchive)
	}
	if len(payload) < 8 {
		return nil, fmt.Errorf("%w: extension payload of %d bytes", ErrCorruptArchive, len(payload))
	}
	gl := binary.LittleEndian.Uint64(payload)
	if gl > uint64(len(payload)-8) {
		return nil, fmt.Errorf("%w: extension: gob stream of %d bytes in a %d-byte payload", ErrCorruptArchive, gl, len(payload))
	}
	var w extensionWire
	if err := gob.NewDecoder(bytes.NewReader(payload[8 : 8+gl])).Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: extension payload: %v", ErrCorruptArchive, err)
	}
	// The windows, copied out of b at once, so that the file's bytes need
	// not stay in memory for them.
	windows := payload[8+gl:]
	if len(w.WindowLens) != len(w.Layers) {
		return nil, fmt.Errorf("%w: extension: window lengths for %d layers, %d layers", ErrCorruptArchive, len(w.WindowLens), len(w.Layers))
	}
	var total uint64
	for i, lens := range w.WindowLens {
		if len(lens) != len(w.Layers[i].Points) {
			return nil, fmt.Errorf("%w: extension: layer %s: %d window lengths for %d points", ErrCorruptArchive, w.Layers[i].Digest, len(lens), len(w.Layers[i].Points))
		}
		for _, n := range lens {
			total += uint64(n)
		}
	}
	if total != uint64(len(windows)) {
		return nil, fmt.Errorf("%w: extension: windows of %d bytes, %d bytes present", ErrCorruptArchive, total, len(windows))
	}
	windows = bytes.Clone(windows)
	for i := range w.Layers {
		l := &w.Layers[i]
		for j, n := range w.WindowLens[i] {
			if n > 0 {
				l.Points[j].ZWindow = windows[:n:n]
				windows = windows[n:]
			}
		}
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("%w: extension: layer %s: %v", ErrCorruptArchive, l.Digest, err)
		}
		// Readers search the points by UOff.
		sort.SliceStable(l.Points, func(i, j int) bool { return l.Points[i].UOff < l.Points[j].UOff })
	}
	return &Extension{Layers: w.Layers}, nil
}

// maxChunkSize bounds LayerExtension.ChunkSize: a reader allocates a chunk.
const maxChunkSize = 16 << 20

// check validates the sizes a reader relies on.
func (l *LayerExtension) check() error {
	switch {
	case l.Size < 0 || l.USize < 0:
		return fmt.Errorf("negative size %d or uncompressed size %d", l.Size, l.USize)
	case l.ChunkSize < 0 || l.ChunkSize > maxChunkSize:
		return fmt.Errorf("chunk size %d outside [0, %d]", l.ChunkSize, maxChunkSize)
	case len(l.ChunkCRCs) > 0 && (l.ChunkSize == 0 || int64(len(l.ChunkCRCs)) != (l.USize+l.ChunkSize-1)/l.ChunkSize):
		return fmt.Errorf("%d chunk checksums of %d bytes for %d bytes", len(l.ChunkCRCs), l.ChunkSize, l.USize)
	}
	return nil
}
