package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// --extension-out: the summary reports both sizes, and the archive followed
// by the extension file is the archive written without the flag.
func TestIndexExtensionOut(t *testing.T) {
	dir := t.TempDir()
	index := func(args ...string) indexSummary {
		t.Helper()
		code, stdout, stderr := runCLI(t, append([]string{"index", "--json", "-q", "oci:" + busybox + ":1.35"}, args...)...)
		var s indexSummary
		if code != 0 || json.Unmarshal([]byte(stdout), &s) != nil {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return s
	}
	full := index("-o", filepath.Join(dir, "full.clip"))
	split := index("-o", filepath.Join(dir, "split.clip"), "--extension-out", filepath.Join(dir, "split.ext"))
	want, _ := os.ReadFile(filepath.Join(dir, "full.clip"))
	a, _ := os.ReadFile(filepath.Join(dir, "split.clip"))
	e, _ := os.ReadFile(filepath.Join(dir, "split.ext"))
	if len(e) == 0 || !bytes.Equal(append(a, e...), want) {
		t.Errorf("split.clip + split.ext (%d + %d bytes) differ from full.clip (%d bytes)", len(a), len(e), len(want))
	}
	if full.ArchiveBytes != int64(len(want)) || split.ArchiveBytes != int64(len(a)) || split.ExtensionBytes != int64(len(e)) || full.ExtensionBytes != split.ExtensionBytes {
		t.Errorf("summaries: full %d/%d, split %d/%d", full.ArchiveBytes, full.ExtensionBytes, split.ArchiveBytes, split.ExtensionBytes)
	}
}
