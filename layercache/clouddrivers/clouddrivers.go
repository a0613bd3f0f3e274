// Package clouddrivers registers the gocloud.dev/blob drivers that
// layercache.OpenURL opens: s3://, gs://, azblob:// and file:// URLs.
// Import it for its side effects where those URLs are wanted (the CLI
// does):
//
//	import _ "github.com/ociclip/ociclip/layercache/clouddrivers"
//
// It is a package of its own because the cloud SDKs behind the drivers are
// large: linked into a program they add about 70 MB to the binary and about
// 30 MiB to its resident memory at start (their package initialisation),
// which a program that only uses a directory cache, or opens a bucket
// itself with layercache.OpenBlob, need not pay.
package clouddrivers

import (
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/fileblob"  // file:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
)
