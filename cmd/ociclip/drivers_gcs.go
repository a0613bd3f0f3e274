//go:build ociclip_gcs

package main

// gs:// URLs for --cache, in a binary built with -tags ociclip_gcs (see
// drivers.go for why the default build leaves them out).

import _ "gocloud.dev/blob/gcsblob" // gs:// URLs
