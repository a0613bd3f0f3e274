// Package clouddrivers registers the gocloud.dev/blob drivers that
// layercache.OpenURL opens: s3://, gs://, azblob:// and file:// URLs.
// Import it for its side effects where those URLs are wanted:
//
//	import _ "github.com/ociclip/ociclip/layercache/clouddrivers"
//
// It is a package of its own because the cloud SDKs behind the drivers are
// large: linked into a program they add about 56 MB to the binary and about
// 23 MiB to its resident memory at start (their package initialisation,
// mostly pages of the binary touched by init functions), which a program
// that only uses a directory cache, or opens a bucket itself with
// layercache.OpenBlob, need not pay. GCS is the largest part (about 15 MiB:
// cloud.google.com/go/storage links gRPC's xDS stack and an OpenTelemetry
// exporter); a program that can do without gs:// can import the drivers it
// wants instead, as the ociclip CLI does (cmd/ociclip/drivers.go: s3://,
// azblob:// and file://, gs:// with -tags ociclip_gcs).
package clouddrivers

import (
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/fileblob"  // file:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
)
