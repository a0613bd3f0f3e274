package e2e_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociclip/ociclip"
	"github.com/ociclip/ociclip/internal/testimage"
)

// Options.Reference: the tag by default, the manifest digest on request
// (clip's ExtractMetadata reads what was recorded).
func TestReferenceMode(t *testing.T) {
	const manifest = "sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9"
	for _, tc := range []struct {
		mode, storage, want string
		warn                bool  // a warning about a digest reference
		err                 error // want this error
	}{
		{"", testimage.BusyboxStorageRef, "1.35", false, nil},
		{ociclip.ReferenceTag, testimage.BusyboxStorageRef, "1.35", false, nil},
		{ociclip.ReferenceTag, "docker.io/library/busybox@" + manifest, manifest, true, nil},
		{ociclip.ReferenceDigest, testimage.BusyboxStorageRef, manifest, false, nil},
		{ociclip.ReferenceDigest, "docker.io/library/busybox", manifest, false, nil},
		{ociclip.ReferenceDigest, "docker.io/library/busybox:1.35@" + manifest, manifest, false, nil},
		{ociclip.ReferenceDigest, "docker.io/library/busybox@sha256:" + strings.Repeat("0", 64), "", false, ociclip.ErrOptions},
		{ociclip.ReferenceDigest, "", "", false, nil},
		{"sha", testimage.BusyboxStorageRef, "", false, ociclip.ErrOptions},
	} {
		out := filepath.Join(t.TempDir(), "o.clip")
		res, err := ociclip.CreateFromOCILayout(context.Background(), ociclip.Options{
			LayoutPath: testdataDir + "/busybox", StorageImageRef: tc.storage, OutputPath: out, Reference: tc.mode,
		})
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("mode %q, %q: %v, want %v", tc.mode, tc.storage, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("mode %q, %q: %v", tc.mode, tc.storage, err)
		}
		_, info := clipNodes(t, out)
		if got := info.Reference; got != tc.want || res.StorageRef.Reference != tc.want {
			t.Errorf("mode %q, %q: Reference %q (result %q), want %q", tc.mode, tc.storage, got, res.StorageRef.Reference, tc.want)
		}
		warned := strings.Contains(strings.Join(res.Warnings, "\n"), "names a digest")
		if warned != tc.warn {
			t.Errorf("mode %q, %q: warnings %q", tc.mode, tc.storage, res.Warnings)
		}
	}
}
