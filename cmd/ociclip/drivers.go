package main

// The gocloud.dev/blob drivers behind --cache URL. The CLI imports them
// itself, not through layercache/clouddrivers, to leave gs:// out of the
// default build: gocloud's gcsblob links cloud.google.com/go/storage, which
// imports gRPC with its xDS stack (envoy's protos) and an OpenTelemetry
// exporter whether or not they are used, and their package initialisation
// cost every run 15-17 MiB of resident memory (ociclip version: 22 MiB
// with s3, azblob and file, 37-40 MiB with gs as well; the binary 49 MB
// against 80 MB; README, Performance). Build with -tags ociclip_gcs for
// gs:// (drivers_gcs.go). TestDefaultBuildDeps keeps it out of the default
// build.

import (
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/fileblob"  // file:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
)
