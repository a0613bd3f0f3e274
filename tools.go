//go:build tools

// This file pins modules that only tests import (the in-process registry and
// clip's FUSE mount) so that `go mod tidy` keeps them.
package ociclip

import (
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/hanwen/go-fuse/v2/fuse"
)
