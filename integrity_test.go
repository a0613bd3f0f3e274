package ociclip_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"
	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
)

// A byte changed anywhere in clip's sections (header, index, storage info)
// is archive.ErrCorruptArchive (or ErrNotClip for clip's magic) for every
// ociclip reader, while clip's own ExtractMetadata still reads the archive
// ociclip wrote, with and without resume points.
func TestClipSectionsChecksum(t *testing.T) {
	for _, span := range []int64{0, -1} {
		out, b, a := writeBusybox(t, span)
		if _, err := clip.NewClipArchiver().ExtractMetadata(out); err != nil {
			t.Fatalf("span %d: clip ExtractMetadata: %v", span, err)
		}
		if a.Extension == nil {
			t.Fatalf("span %d: no extension section", span)
		}
		end := int(a.Header.StorageInfoPos + a.Header.StorageInfoLength)
		// Every byte of the header, and bytes spread over index and
		// storage info (the last byte of the storage info included).
		var offsets []int
		for i := 0; i < common.ClipHeaderLength; i++ {
			offsets = append(offsets, i)
		}
		for i := common.ClipHeaderLength; i < end; i += 37 {
			offsets = append(offsets, i)
		}
		offsets = append(offsets, end-1)
		for _, off := range offsets {
			c := append([]byte(nil), b...)
			c[off] ^= 0x01
			_, err := archive.Decode(c)
			if !errors.Is(err, archive.ErrCorruptArchive) && !errors.Is(err, archive.ErrNotClip) {
				t.Errorf("span %d: byte %d of %d flipped: Decode = %v, want ErrCorruptArchive", span, off, end, err)
			}
		}
	}
}

// The storage info's "created" time is what the issue saw go unnoticed: a
// changed byte there decoded (as year 1). Every ociclip reader refuses it.
func TestClipSectionsChecksumReaders(t *testing.T) {
	out, b, a := writeBusybox(t, 0)
	// A byte of the seconds of ImageMetadata.Created (a time.Time, stored
	// as its MarshalBinary bytes inside the storage info's gob).
	created, err := a.Storage.ImageMetadata.Created.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b[a.Header.StorageInfoPos:], created)
	if at < 0 {
		t.Fatal("created time not found in the storage info")
	}
	b[a.Header.StorageInfoPos+int64(at)+2] ^= 0x40
	// Without the checksum the change goes unnoticed: clip's sections
	// alone still decode, to another time.
	end := a.Header.StorageInfoPos + a.Header.StorageInfoLength
	if changed, err := archive.Decode(b[:end]); err != nil || changed.Storage.ImageMetadata.Created.Equal(a.Storage.ImageMetadata.Created) {
		t.Fatalf("the changed storage info alone: %v; want it to decode to another time", err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.ReadFile(out); !errors.Is(err, archive.ErrCorruptArchive) {
		t.Errorf("archive.ReadFile: %v, want ErrCorruptArchive", err)
	}
	if _, err := ociclip.OpenReader(out, "testdata/busybox"); !errors.Is(err, archive.ErrCorruptArchive) {
		t.Errorf("OpenReader: %v, want ErrCorruptArchive", err)
	}
}

// writeBusybox indexes testdata/busybox with the given SpanBytes and returns
// the archive's path, bytes and decoded form.
func writeBusybox(t *testing.T, span int64) (string, []byte, *archive.Archive) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.clip")
	if _, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
		LayoutPath: "testdata/busybox", LayoutRef: "1.35", StorageImageRef: testimage.BusyboxStorageRef,
		OutputPath: out, SpanBytes: span,
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out, b, a
}
