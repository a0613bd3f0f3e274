package archive

import "io"

// WriteExtensionFile writes the extension section alone to path, atomically
// as WriteFile does: the bytes WriteFile would append after clip's
// sections, so that an archive written without it followed by this file
// (cat OUT.clip OUT.ext) is the archive written with it.
func WriteExtensionFile(path string, ext *Extension) error {
	b, err := ext.MarshalBinary()
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
