# ociclip — see README.md.
GO        ?= go
FUZZTIME  ?= 5s
BENCHTIME ?= 1x
TAGS      ?=
PKGS      := ./...

.PHONY: all build test vet fmt-check unit bench-smoke fuzz-smoke demo bench bench-cache bench-mount bench-data clean

all: build

# TAGS=ociclip_gcs adds gs:// to --cache (README, Build and install).
build:
	$(GO) build -tags '$(TAGS)' -o bin/ociclip ./cmd/ociclip

# The test command of README.md and .ci/run: format, vet, unit/integration
# tests, every benchmark once, every fuzz target for $(FUZZTIME).
test: fmt-check vet unit bench-smoke fuzz-smoke

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# internal/cdapply (containerd's applier for internal/e2e/applier_test.go) is a module of
# its own, outside ./...
vet:
	$(GO) vet $(PKGS)
	cd internal/cdapply && $(GO) vet .

# The unit tests' results as plain go test prints them, then every skipped
# test with its reason (go test hides skips without -v): a machine missing
# fuse3, umoci or skopeo shows what it did not run. CI=true makes those
# tests fail instead of skipping.
unit:
	@rc=$$(mktemp); trap 'rm -f $$rc' EXIT; \
	{ $(GO) test -count=1 -timeout 15m -json $(PKGS); echo $$? > $$rc; } | $(GO) run ./internal/testsummary; sum=$$?; \
	test "$$sum" = 0 && test "$$(cat $$rc)" = 0

# Every benchmark once. OCICLIP_BENCH_DATA=none: package bench uses testdata
# and small generated images even when bench/data exists (CI has none).
bench-smoke:
	OCICLIP_BENCH_DATA=none $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 10m $(PKGS)

# Runs every Fuzz* target of the module (every package, found from the
# test files) for $(FUZZTIME) each, in the package's directory, with short
# minimization of new inputs ($(FUZZMINIMIZE)) so that the time goes to
# fuzzing. Longer runs: make fuzz-smoke FUZZTIME=10m. Go 1.26's fuzzing
# coordinator can fail a run with "context deadline exceeded" when
# -fuzztime expires during an execution (go.dev/issue/75804, fixed in Go
# 1.27): such a run, which wrote no failing input, is reported and passes.
FUZZMINIMIZE ?= 50x
fuzz-smoke:
	@set -e; out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for dir in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path '*/testdata/*') | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
	    echo "fuzz $$dir $$t ($(FUZZTIME))"; \
	    if $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$dir > $$out 2>&1; then \
	      cat $$out; \
	    elif grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then \
	      cat $$out; echo "fuzz-smoke: $$t: Go's -fuzztime deadline race (go.dev/issue/75804), no failing input: passed"; \
	    else \
	      cat $$out; exit 1; \
	    fi; \
	  done; \
	done

# The main job on the layout shipped in testdata/.
demo:
	$(GO) run ./cmd/ociclip index oci:testdata/busybox:1.35 -o /tmp/busybox.clip --storage-ref docker.io/library/busybox:1.35
	$(GO) run ./cmd/ociclip ls /tmp/busybox.clip /bin -l

# The benchmark images (not committed): bench/data/, see bench/make-bench-data.sh.
bench-data:
	sh bench/make-bench-data.sh

# ociclip next to gzip -dc / zstd -dc on the same blobs, concurrency, memory
# vs layer size and clip's own indexer (docs/BENCH.md). BENCHRUNS runs each.
BENCHRUNS ?= 3
bench: build
	@test -f bench/data/size512-zstd/index.json || $(MAKE) bench-data
	$(GO) run ./bench/cmd/benchreport -data bench/data -ociclip bin/ociclip -runs $(BENCHRUNS) $(BENCHFLAGS)
	$(MAKE) bench-mount

# Lazy mounts side by side: ociclip's storage (clipstorage) and clip's own
# (clip.MountArchive), same archive, same loopback registry; needs FUSE.
bench-mount:
	cd bench && $(GO) test -run '^$$' -bench '^BenchmarkMount$$' -benchtime 1x -timeout 60m .

# Only the layer cache through an object store (gofakes3 on 127.0.0.1):
# no cache, cold and warm on the gzip image.
bench-cache: build
	@test -f bench/data/image/index.json || $(MAKE) bench-data
	$(GO) run ./bench/cmd/benchreport -data bench/data -ociclip bin/ociclip -runs $(BENCHRUNS) -only cache

clean:
	rm -rf bin
