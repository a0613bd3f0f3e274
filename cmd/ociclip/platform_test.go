package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --platform is checked against a single-manifest image's config: the
// linux/amd64 busybox layout asked for linux/arm64 fails naming both and
// writes nothing; asked for its own platform, it is indexed.
func TestIndexPlatformCheckedOnSingleManifest(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.clip")
	code, stdout, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out, "--platform", "linux/arm64")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "linux/arm64 was asked for") || !strings.Contains(stderr, "is linux/amd64") {
		t.Errorf("linux/arm64: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output written: %v", err)
	}
	if code, _, stderr := runCLI(t, "index", "-q", "oci:"+busybox+":1.35", "-o", out, "--platform", "linux/amd64"); code != 0 {
		t.Errorf("linux/amd64: exit %d, %s", code, stderr)
	}
}
