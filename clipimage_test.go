package ociclip_test

import (
	"testing"

	"github.com/ociclip/ociclip"
)

// LocalImageSource takes what users write for a local image and leaves
// registry references to clip.
func TestLocalImageSource(t *testing.T) {
	for _, tc := range []struct {
		ref, want string
		local     bool
	}{
		{"oci:/tmp/ubuntu:24.04", "oci:/tmp/ubuntu:24.04", true},
		{"oci:/tmp/ubuntu", "oci:/tmp/ubuntu", true},
		{"oci-layout:///tmp/ubuntu:24.04", "oci:/tmp/ubuntu:24.04", true},
		{"/tmp/ubuntu:24.04", "oci:/tmp/ubuntu:24.04", true},
		{"./ubuntu:24.04", "oci:./ubuntu:24.04", true},
		{"../ubuntu", "oci:../ubuntu", true},
		{"oci-archive:/tmp/u.tar:24.04", "oci-archive:/tmp/u.tar:24.04", true},
		{"docker-archive:/tmp/u.tar:ubuntu:24.04", "docker-archive:/tmp/u.tar:ubuntu:24.04", true},
		{"dir:/tmp/udir", "dir:/tmp/udir", true},
		{"testdata/busybox:1.35", "oci:testdata/busybox:1.35", true}, // a layout exists there
		{"testdata/busybox@sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9", "oci:testdata/busybox@sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9", true},
		{"testdata:1.35", "", false}, // a directory without oci-layout
		{"ubuntu:24.04", "", false},
		{"ubuntu", "", false},
		{"docker.io/library/ubuntu:24.04", "", false},
		{"127.0.0.1:5000/test/busybox:1.35", "", false},
		{"localhost:5000/test/busybox@sha256:cccc85d885b0f4f7baba887dc2e0684c75c43a2a280f2b639b6bd1710da82cb9", "", false},
		{"oci-layout://", "", false},
		{"", "", false},
	} {
		got, local := ociclip.LocalImageSource(tc.ref)
		if got != tc.want || local != tc.local {
			t.Errorf("LocalImageSource(%q) = %q, %v; want %q, %v", tc.ref, got, local, tc.want, tc.local)
		}
	}
}
