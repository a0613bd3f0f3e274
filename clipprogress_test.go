package ociclip_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/beam-cloud/clip/pkg/clip"

	"github.com/ociclip/ociclip"
)

// newestClipProgress mirrors the progress type of newer clip versions: clip
// a2a14fb's fields followed by the byte-level ones an image service reads.
type newestClipProgress struct {
	LayerIndex      int
	TotalLayers     int
	LayerDigest     string
	Stage           string
	FilesIndexed    int
	Message         string
	BytesProcessed  int64
	BytesTotal      int64
	CompletedLayers int
	Source          string
}

// Progress converts to newer clip's shape with one conversion and to clip
// a2a14fb's with Progress.Clip, and its byte-level fields add up: bytes
// grow to the image's total, completed layers count up, and Source says
// where each layer's index came from (the layout, then the cache).
func TestProgressByteFields(t *testing.T) {
	cache := t.TempDir()
	for pass, wantSource := range []string{ociclip.SourceLocalLayout, ociclip.SourceIndexCache} {
		ch := make(chan ociclip.Progress, 100)
		res, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
			LayoutPath: "testdata/busybox", OutputPath: filepath.Join(t.TempDir(), "o.clip"),
			ProgressChan: ch, Concurrency: 1, CacheDir: cache,
		})
		if err != nil {
			t.Fatal(err)
		}
		close(ch)
		var events []ociclip.Progress
		for p := range ch {
			events = append(events, p)
		}
		if len(events) != 6 {
			t.Fatalf("pass %d: %d events, want 6", pass, len(events))
		}
		total := events[0].BytesTotal
		var prev int64
		completed := 0
		for _, p := range events {
			if p.BytesTotal != total || p.BytesProcessed < prev || p.BytesProcessed > total {
				t.Errorf("pass %d: bytes %d/%d after %d (total %d): %+v", pass, p.BytesProcessed, p.BytesTotal, prev, total, p)
			}
			prev = p.BytesProcessed
			if p.Stage == ociclip.StageCompleted {
				completed++
				if p.CompletedLayers != completed || p.Source != wantSource {
					t.Errorf("pass %d: completed event %+v, want CompletedLayers %d, Source %s", pass, p, completed, wantSource)
				}
			}
			n := newestClipProgress(p)
			if n.BytesProcessed != p.BytesProcessed || n.Source != p.Source || n.LayerDigest != p.LayerDigest {
				t.Errorf("conversion to the newest shape lost fields: %+v from %+v", n, p)
			}
			c := p.Clip()
			want := clip.OCIIndexProgress{LayerIndex: p.LayerIndex, TotalLayers: p.TotalLayers, LayerDigest: p.LayerDigest,
				Stage: p.Stage, FilesIndexed: p.FilesIndexed, Message: p.Message}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("Clip() = %+v, want %+v", c, want)
			}
		}
		if last := events[len(events)-1]; last.BytesProcessed != total || total != res.CompressedBytes {
			t.Errorf("pass %d: last event %d of %d bytes; the layers have %d", pass, last.BytesProcessed, total, res.CompressedBytes)
		}
	}
}

// Progress keeps clip a2a14fb's fields as its first fields, with the same
// names and types, so that Clip stays a field-for-field copy.
func TestProgressStartsWithClipFields(t *testing.T) {
	ct, pt := reflect.TypeFor[clip.OCIIndexProgress](), reflect.TypeFor[ociclip.Progress]()
	for i := range ct.NumField() {
		if f := pt.Field(i); f.Name != ct.Field(i).Name || f.Type != ct.Field(i).Type {
			t.Errorf("Progress field %d is %s %s, clip's is %s %s", i, f.Name, f.Type, ct.Field(i).Name, ct.Field(i).Type)
		}
	}
}
