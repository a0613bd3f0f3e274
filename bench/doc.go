// Package bench holds ociclip's benchmarks: raw inflate (standard library vs
// klauspost/compress), the per-layer pass (tarindex.Index) per compression,
// whole images end to end (ociclip.CreateFromOCILayout, with 1, 2 and 4
// concurrent layers, next to clip's own CreateFromOCIImage on a loopback
// registry), the archive writer on 100k+ nodes, time vs number of files and
// memory vs layer size, and the external yardsticks `gzip -dc` and
// `zstd -dc` on the same blobs.
//
// The inputs are the real layouts of testdata/ and, when present, the images
// that `make bench-data` writes under bench/data (see make-bench-data.sh).
// Without bench/data, or with OCICLIP_BENCH_DATA=none (what `make
// bench-smoke` sets), the benchmarks run on testdata and on a small image
// generated in memory, so that CI runs every benchmark briefly. Set
// OCICLIP_BENCH_DATA=DIR to use another data directory.
//
// `make bench` (cmd/benchreport) compares the ociclip CLI with gzip -dc and
// zstd -dc on the same blobs and reports peak memory; docs/BENCH.md says how
// to compare two commits with benchstat.
package bench
