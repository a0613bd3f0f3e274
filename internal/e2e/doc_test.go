// Package e2e_test holds ociclip's system tests: the differential test
// against clip's own indexer (compat), FUSE mounts with clip's filesystem
// compared with umoci (fuse), the catalogue of hostile and broken inputs
// (catalogue) and the layer cache across runs (cache). They drive the
// public API and real tools end to end; unit tests live beside the code.
package e2e_test

// testdataDir holds the repository's small real layouts.
const testdataDir = "../../testdata"
