// Package fuzz holds ociclip's cross-package fuzz targets (issue 6: hostile
// and broken input). It has no code of its own; the targets live in its
// test files and are run with
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzLayer$' -fuzztime 10m -parallel 1
//
// (make fuzz-smoke runs every Fuzz* target of the module for a few seconds).
//
// Targets and the properties they check, beyond "does not panic or hang":
//
//   - FuzzLayoutJSON: index.json, a nested index, a manifest and a config
//     from fuzzed templates (placeholders stand for the digests and sizes of
//     the other documents, so the fuzzer gets past digest verification),
//     through ociread.Open and Resolve with low limits. Every error wraps an
//     ociread sentinel; a resolved image has one DiffID per layer, layer
//     media types ociclip can index, valid digests, and a manifest that is
//     one of the blobs of the layout; Resolve is deterministic.
//   - FuzzLayer: tarindex.Index over fuzzed bytes that the target wraps in
//     gzip (five writers), zstd (three framings) or nothing, or takes as the
//     raw blob under any media type. Errors wrap a tarindex sentinel; a
//     successful pass has clean absolute entry paths (and hard link
//     targets), strictly increasing data offsets inside the stream, data
//     that archive/tar reads identically at those offsets, a DiffID equal to
//     the sha256 of the decompressed input, exact sizes, strictly increasing
//     checkpoints, resume points whose windows are the bytes before them and
//     from which layerz.OpenAt resumes the true stream, contiguous zstd
//     frames that layerz.OpenFrame decodes to the true stream, and results
//     within the limits; allocation per execution is bounded.
//   - FuzzCreateFromOCILayout: a whole layout (two layers from fuzzed tar
//     bytes, fuzzed manifest/config/index templates) written to a temporary
//     directory and run through ociclip.CreateFromOCILayout. A failure wraps
//     a sentinel and leaves nothing in the output directory; a success is
//     decoded by clip's ExtractMetadata and by archive.ReadFile, every node
//     path is clean absolute, every file's data lies inside its layer, the
//     files read through ociclip.Reader equal the tar's bytes, the
//     output is reproducible and the run's allocation is bounded.
//   - FuzzDecode: archive.Decode (header, index, storage info, extension
//     section) of fuzzed bytes. Errors wrap ErrNotClip or ErrCorruptArchive;
//     a decoded archive has sorted, unique, clean absolute node paths and
//     survives Encode/Decode unchanged (and re-encodes to the same bytes);
//     allocation is bounded by the input size.
//   - FuzzFileReader: ociclip.Reader over an archive that was encoded
//     and decoded again, with one fuzzed resume point (or zstd frame),
//     window, node location and read range: a read returns the true bytes
//     of the layer or an error (ErrVerify, tarindex.ErrCorrupt), never
//     wrong bytes, and an intact archive always reads; with the chunk
//     checksums or the extension dropped, only the errors are checked.
//
// Targets kept in their packages: ociread.FuzzResolve, ociread.FuzzOpenArchive
// and tarindex.FuzzIndex.
package fuzz
