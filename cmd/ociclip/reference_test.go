package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// --reference digest records the manifest digest; tag (the default) the tag.
func TestIndexReference(t *testing.T) {
	const manifest = "sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9"
	for mode, want := range map[string]string{"": "1.35", "tag": "1.35", "digest": manifest} {
		args := []string{"index", "--json", "-q", "oci:" + busybox + ":1.35", "-o", filepath.Join(t.TempDir(), "x.clip"),
			"--storage-ref", "docker.io/library/busybox:1.35"}
		if mode != "" {
			args = append(args, "--reference", mode)
		}
		code, stdout, stderr := runCLI(t, args...)
		var s indexSummary
		if code != 0 || json.Unmarshal([]byte(stdout), &s) != nil {
			t.Fatalf("--reference %q: exit %d: %s", mode, code, stderr)
		}
		if s.Reference != want {
			t.Errorf("--reference %q: reference %q, want %q", mode, s.Reference, want)
		}
	}
	code, _, stderr := runCLI(t, "index", "oci:"+busybox+":1.35", "-o", filepath.Join(t.TempDir(), "x.clip"), "--reference", "sha")
	if code == 0 || !strings.Contains(stderr, `"tag" or "digest"`) {
		t.Errorf("--reference sha: exit %d: %s", code, stderr)
	}
}
