package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"fmt"
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
// checkpoints (with their 32 KiB windows) for random access into unmodified
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

// extensionPayload is the gob-encoded form of Extension, a distinct type so
// that methods added to Extension never change how it is encoded.
type extensionPayload Extension

// marshalSection encodes the section: the header (magic, version uint32
// LE, payload length uint64 LE, sha256 of the payload, clipSum: the sha256 of
// every byte before the section, clip's header, index and storage info) and
// the payload (a gob stream; the windows in it are compressed one by one,
// so compressing the whole gained 0.3% and cost a copy of it).
func (e *Extension) marshalSection(clipSum [sha256.Size]byte) (head, payload []byte, err error) {
	// The payload is mostly the windows of the resume points: size the
	// gob buffer for them up front instead of growing it many times.
	hint := 4 << 10
	for _, l := range e.Layers {
		hint += 512 + len(l.Digest) + len(l.DiffID) + 5*len(l.ChunkCRCs)
		for _, p := range l.Points {
			hint += 64 + len(p.ZWindow)
		}
	}
	payload, err = detgob.MarshalSize((*extensionPayload)(e), hint)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding extension: %w", err)
	}
	sum := sha256.Sum256(payload)
	head = make([]byte, 0, extensionHeaderLen)
	head = append(head, ExtensionMagic[:]...)
	head = binary.LittleEndian.AppendUint32(head, ExtensionVersion)
	head = binary.LittleEndian.AppendUint64(head, uint64(len(payload)))
	head = append(head, sum[:]...)
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
	var e extensionPayload
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: extension payload: %v", ErrCorruptArchive, err)
	}
	for i := range e.Layers {
		l := &e.Layers[i]
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("%w: extension: layer %s: %v", ErrCorruptArchive, l.Digest, err)
		}
		// Readers search the points by UOff.
		sort.SliceStable(l.Points, func(i, j int) bool { return l.Points[i].UOff < l.Points[j].UOff })
	}
	return (*Extension)(&e), nil
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
