package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
	"github.com/ociclip/ociclip/ociread"
	"github.com/ociclip/ociclip/tarindex"
)

// ExtensionOutputPath: the archive without the section, the section in a
// file of its own, and the two together are the archive with it.
func TestExtensionOutputPath(t *testing.T) {
	opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", StorageImageRef: testimage.BusyboxStorageRef}
	full, want := indexArchive(t, opts)
	if full.Size.Total != int64(len(want)) || full.Size.Extension <= 0 ||
		full.Size.Total != 54+full.Size.Index+full.Size.StorageInfo+full.Size.Extension {
		t.Errorf("sizes %+v of a %d-byte archive", full.Size, len(want))
	}
	ext := filepath.Join(t.TempDir(), "x.ext")
	opts.ExtensionOutputPath = ext
	split, clipBytes := indexArchive(t, opts)
	extBytes, err := os.ReadFile(ext)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(clipBytes, extBytes...), want) {
		t.Error("archive + extension file differ from the archive with the extension")
	}
	if split.Size.Total != int64(len(clipBytes)) || split.Size.Extension != int64(len(extBytes)) || split.Size.Extension != full.Size.Extension {
		t.Errorf("sizes %+v, archive %d bytes, extension %d bytes", split.Size, len(clipBytes), len(extBytes))
	}
	_, info := clipNodes(t, split.OutputPath) // clip reads the short archive
	if info.ImageMetadata == nil {
		t.Error("no ImageMetadata")
	}
	for _, bad := range []ociclip.Options{
		{LayoutPath: testdataDir + "/busybox", ExtensionOutputPath: ext, SpanBytes: -1, OutputPath: filepath.Join(t.TempDir(), "a.clip")},
		{LayoutPath: testdataDir + "/busybox", ExtensionOutputPath: ext, OutputPath: ext},
	} {
		if _, err := ociclip.CreateFromOCILayout(context.Background(), bad); !errors.Is(err, ociclip.ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", bad, err)
		}
	}
}

// Past ArchiveSizeWarning a run warns and names the largest section.
func TestArchiveSizeWarning(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		ext   bool
		want  string
	}{
		{0, false, ""},
		{-1, false, ""},
		{1000, false, "clip's index of 43 nodes"},
		{1000, true, "clip's index of 43 nodes"},
	} {
		opts := ociclip.Options{LayoutPath: testdataDir + "/busybox", StorageImageRef: testimage.BusyboxStorageRef, ArchiveSizeWarning: tc.limit}
		if tc.ext {
			opts.ExtensionOutputPath = filepath.Join(t.TempDir(), "x.ext")
		}
		res, _ := indexArchive(t, opts)
		var got []string
		for _, w := range res.Warnings {
			if strings.Contains(w, "the archive is") {
				got = append(got, w)
			}
		}
		switch {
		case tc.want == "" && len(got) != 0, tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("limit %d, extension out %v: warnings %q, want one with %q", tc.limit, tc.ext, got, tc.want)
		}
	}
}

// The last clip checkpoint of every gzip layer is at the very end of its
// uncompressed stream, whatever wrote the gzip stream (newer clip takes the
// largest checkpoint as the layer's uncompressed size), and a run on such
// layers gives no checkpoint warning.
func TestLastCheckpointAtLayerEnd(t *testing.T) {
	dir := t.TempDir()
	var refs []testimage.Ref
	for _, c := range []testimage.Compression{testimage.Gzip, testimage.GzipMulti, testimage.GzipFlush, testimage.GzipStored, testimage.GzipStdlib} {
		l := testimage.Layer{Compression: c}
		for i := range 12 {
			b := make([]byte, 300<<10)
			for j := range b {
				b[j] = byte((j*7+i)%251) ^ byte(j>>9)
			}
			l.Entries = append(l.Entries, testimage.Entry{Name: "f" + string(rune('a'+i)), Body: b})
		}
		refs = append(refs, testimage.Ref{Name: string(c), Image: &testimage.Image{Layers: []testimage.Layer{l}}})
	}
	if _, err := testimage.Write(dir, refs...); err != nil {
		t.Fatal(err)
	}
	l, err := ociread.Open(dir, ociread.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ref := range refs {
		img, err := l.Resolve(context.Background(), ociread.Select{Ref: ref.Name})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.OpenBlob(img.Layers[0])
		if err != nil {
			t.Fatal(err)
		}
		r, err := tarindex.Index(context.Background(), rc, tarindex.Options{MediaType: img.Layers[0].MediaType})
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		n := len(r.GzipCheckpoints)
		if n < 2 || r.GzipCheckpoints[n-1].UOff != r.UncompressedSize {
			t.Errorf("%s: %d checkpoints, the last %+v, layer of %d uncompressed bytes", ref.Name, n, r.GzipCheckpoints[n-1], r.UncompressedSize)
		}
		res, _ := indexArchive(t, ociclip.Options{LayoutPath: dir, LayoutRef: ref.Name})
		for _, w := range res.Warnings {
			if strings.Contains(w, "checkpoint") {
				t.Errorf("%s: %s", ref.Name, w)
			}
		}
	}
}
