package ociclip

import (
	"errors"
	"strings"
	"testing"

	"github.com/beam-cloud/clip/pkg/common"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ociclip/ociclip/layerz"
	"github.com/ociclip/ociclip/tarindex"
)

func TestCheckStorageInfo(t *testing.T) {
	md := &common.ImageMetadata{}
	for _, tc := range []struct {
		info   common.OCIStorageInfo
		layers int
		ok     bool
	}{
		{common.OCIStorageInfo{ImageMetadata: md, Layers: []string{"a"}, DecompressedHashByLayer: map[string]string{"a": "x"}}, 1, true},
		{common.OCIStorageInfo{ImageMetadata: md}, 0, true},
		{common.OCIStorageInfo{Layers: []string{"a"}, DecompressedHashByLayer: map[string]string{"a": "x"}}, 1, false},
		{common.OCIStorageInfo{ImageMetadata: md, DecompressedHashByLayer: map[string]string{"a": "x"}}, 1, false},
		{common.OCIStorageInfo{ImageMetadata: md, Layers: []string{"a"}}, 1, false},
	} {
		err := checkStorageInfo(&tc.info, tc.layers)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrIncompleteArchive) {
			t.Errorf("%+v with %d layers: %v", tc.info, tc.layers, err)
		}
	}
}

func TestCheckpointWarnings(t *testing.T) {
	layers := []v1.Descriptor{{Digest: "sha256:aa"}, {Digest: "sha256:bb"}, {Digest: "sha256:cc"}}
	results := []*tarindex.Result{
		{Compression: layerz.Gzip, UncompressedSize: 10 << 20, GzipCheckpoints: []tarindex.Checkpoint{{COff: 5, UOff: 10 << 20}}},
		{Compression: layerz.Gzip, UncompressedSize: 10 << 20, GzipCheckpoints: []tarindex.Checkpoint{{COff: 5, UOff: 4 << 20}}},
		{Compression: layerz.Zstd, UncompressedSize: 10 << 20},
	}
	w := checkpointWarnings(layers, results)
	if len(w) != 1 || !strings.Contains(w[0], "layer 2 sha256:bb") {
		t.Errorf("warnings %q", w)
	}
}

func TestSizeWarning(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		s    ArchiveSize
		sep  bool
		want string
	}{
		{ArchiveSize{Total: 100 * mib, Index: 90 * mib}, false, ""},
		{ArchiveSize{Total: 200 * mib, Index: 150 * mib, StorageInfo: 10 * mib, Extension: 40 * mib}, false, "index of 7 nodes"},
		{ArchiveSize{Total: 200 * mib, Index: 50 * mib, StorageInfo: 10 * mib, Extension: 140 * mib}, false, "--extension-out"},
		{ArchiveSize{Total: 200 * mib, Index: 50 * mib, StorageInfo: 150 * mib, Extension: 140 * mib}, true, "storage info (150.0 MiB"},
	} {
		got := sizeWarning(tc.s, 7, 0, tc.sep)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}
