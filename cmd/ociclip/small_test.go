package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beam-cloud/clip/pkg/common"

	"github.com/ociclip/ociclip/archive"
	"github.com/ociclip/ociclip/internal/testimage"
)

// Flag values that cannot work are usage errors (exit 2, one line):
// a negative --jobs and an unparsable --storage-ref (which exited 1).
func TestIndexBadJobsAndStorageRef(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	for _, tc := range []struct{ flag, value, want string }{
		{"--jobs", "-3", "--jobs must not be negative"},
		{"--storage-ref", "UPPER/Case", "--storage-ref: invalid storage image reference"},
		{"--storage-ref", "docker.io/library/busybox:bad:tag", "--storage-ref"},
	} {
		code, stdout, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", out, tc.flag, tc.value)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.flag, tc.value, code, stdout, stderr, tc.want)
		}
	}
}

// A --storage-ref without a tag is stored as clip stores it (":latest"),
// with a warning saying so.
func TestIndexStorageRefWithoutTagWarns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	for _, ref := range []string{"docker.io/library/busybox", "localhost:5000/busybox"} {
		code, _, stderr := runCLI(t, "index", "--progress", "none", "oci:"+busybox+":1.35", "-o", out, "--storage-ref", ref)
		if code != 0 || !strings.Contains(stderr, "warning: storage reference \""+ref+"\" names no tag: a mount fetches :latest") {
			t.Errorf("%s: exit %d, stderr %q", ref, code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, "index", "--progress", "none", "oci:"+busybox+":1.35", "-o", out, "--storage-ref", "localhost:5000/busybox:1.35"); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("tagged: exit %d, stderr %q", code, stderr)
	}
}

func TestPluralAndRate(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 entries"}, {1, "1 entry"}, {2, "2 entries"}} {
		if got := plural(tc.n, "entry", "entries"); got != tc.want {
			t.Errorf("plural(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		bytes int64
		d     time.Duration
		want  string
	}{
		{512, time.Millisecond, "512.0 kB/s"},
		{20, time.Second, "20 B/s"},
		{34_400_000, time.Second, "34.4 MB/s"},
		{3_000_000_000, time.Second, "3.0 GB/s"},
		{1, 0, ""},
	} {
		if got := rate(tc.bytes, tc.d); got != tc.want {
			t.Errorf("rate(%d, %v) = %q, want %q", tc.bytes, tc.d, got, tc.want)
		}
	}
}

// A one-entry layer's progress line says "1 entry" and a rate that is not
// "0.0 MB/s"; a one-layer summary says "1 layer" and "1 file".
func TestIndexTinyLayerWording(t *testing.T) {
	dir := t.TempDir()
	if _, err := testimage.Write(dir, testimage.Ref{Name: "v1", Image: &testimage.Image{Layers: []testimage.Layer{{Entries: []testimage.Entry{{Name: "a", Body: []byte("a")}}}}}}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "index", "--progress", "lines", "oci:"+dir+":v1", "-o", filepath.Join(t.TempDir(), "x.clip"), "--storage-ref", "docker.io/library/x:1")
	if code != 0 {
		t.Fatal(stderr)
	}
	if !strings.Contains(stderr, ", 1 entry\n") || strings.Contains(stderr, " 0.0 ") || strings.Contains(stderr, "entries") {
		t.Errorf("progress: %q", stderr)
	}
	if !strings.Contains(stdout, ": 1 layer, ") || !strings.Contains(stdout, "(1 file, ") || strings.Contains(stdout, " 0.0 ") {
		t.Errorf("summary: %q", stdout)
	}
}

// inspect counts the bytes of hard-linked files once (busybox's /bin/true
// is a hard link to /bin/busybox: it counted 1.9 MiB twice).
func TestInspectCountsHardLinkedBytesOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bb.clip")
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out); code != 0 {
		t.Fatal(stderr)
	}
	a, err := archive.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Independently: each distinct data location once.
	var want, all int64
	seen := map[string]bool{}
	for _, n := range a.Nodes {
		if n.NodeType != common.FileNode || n.Remote == nil {
			continue
		}
		all += int64(n.Attr.Size)
		if k := fmt.Sprintf("%s@%d", n.Remote.LayerDigest, n.Remote.UOffset); !seen[k] {
			seen[k] = true
			want += int64(n.Attr.Size)
		}
	}
	if want == all {
		t.Fatal("the image has no hard-linked file data: the test proves nothing")
	}
	code, stdout, stderr := runCLI(t, "inspect", "--json", out)
	var o inspectOutput
	if code != 0 || json.Unmarshal([]byte(stdout), &o) != nil {
		t.Fatalf("inspect: %d %s", code, stderr)
	}
	if o.FileBytes != want {
		t.Errorf("fileBytes %d, want %d (hard-linked bytes counted once; %d counts them twice)", o.FileBytes, want, all)
	}
}
