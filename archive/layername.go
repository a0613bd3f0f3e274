package archive

import "fmt"

// LayerName is how ociclip names a layer in messages: "layer 2/3
// sha256:…" (1-based index in manifest order, the number of layers, the
// compressed digest, which callers may shorten).
func LayerName(index, total int, digest string) string {
	return fmt.Sprintf("layer %d/%d %s", index, total, digest)
}
