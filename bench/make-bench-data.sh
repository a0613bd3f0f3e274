#!/bin/sh
# make-bench-data.sh: build the benchmark images under bench/data/ (not
# committed; see docs/BENCH.md). Run from the repository root: `make bench-data`.
#
# Needs: umoci (real pgzip layers), skopeo (zstd and uncompressed copies),
# coreutils, findutils. Uses only files of this machine (/usr/lib, /usr/share,
# /usr/include, the Go toolchain at $(go env GOROOT)); no network.
#
# Layouts written (each an OCI image layout with ref "bench"):
#   image        a multi-layer image, gzip layers written by umoci (pgzip)
#   image-zstd   the same image, layers recompressed by skopeo to zstd
#   image-plain  the same image, uncompressed layers
#   size64       one gzip layer of 64 MiB  (256 files of 256 KiB)
#   size512      one gzip layer of 512 MiB (256 files of 2 MiB)
#   size512-zstd the same, recompressed by skopeo to zstd
# Sizes are uncompressed. The number of files is the same in size64 and
# size512, so that peak memory vs layer size is not mixed up with the size of
# the node list.
#
# BENCH_SMALL=1 builds a much smaller image (a few hundred MiB) for a quick try.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/data"
TAG=bench
T=1700000000
T_RFC=2023-11-14T22:13:20Z
goroot=$(go env GOROOT 2>/dev/null || echo /usr/local/go)

for t in umoci skopeo; do
	command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y umoci skopeo" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ociclip-bench-data.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
export TZ=UTC
umask 022

hist() { echo "--history.created=$T_RFC --history.author=ociclip-bench"; }

# insert IMAGE SRC TARGET: one new layer holding SRC at TARGET.
insert() {
	[ -e "$2" ] || { echo "skipping missing $2" >&2; return 0; }
	umoci insert $(hist) --history.created_by="insert $3" --image "$1:$TAG" "$2" "$3"
}

# ---- the multi-layer image ----------------------------------------------------
L="$work/image"
umoci init --layout "$L"
umoci new --image "$L:$TAG"
if [ "${BENCH_SMALL:-}" = 1 ]; then
	insert "$L" /usr/include /usr/include
	insert "$L" "$goroot/src" /usr/local/go/src
	insert "$L" /usr/lib/python3.11 /usr/lib/python3.11
else
	# A distribution-like base of shared libraries, then data files (many
	# small ones), a toolchain, headers and an interpreter's library.
	insert "$L" /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
	insert "$L" /usr/share /usr/share
	insert "$L" "$goroot" /usr/local/go
	insert "$L" /usr/include /usr/include
	insert "$L" /usr/lib/python3.11 /usr/lib/python3.11
fi
# A small top layer: configuration, and a whiteout of a lower directory.
mkdir -p "$work/etc-app"
printf 'listen = 8080\nworkers = 4\n' >"$work/etc-app/app.conf"
insert "$L" "$work/etc-app" /etc/app
umoci insert $(hist) --history.created_by="remove docs" --image "$L:$TAG" --whiteout /usr/share/doc
umoci config $(hist) --history.created_by=config --image "$L:$TAG" \
	--created "$T_RFC" --architecture amd64 --os linux --config.cmd /bin/sh
umoci gc --layout "$L"
cp -r "$L" "$out/image"

skopeo copy -q --dest-compress-format zstd oci:"$L:$TAG" oci:"$out/image-zstd:$TAG"
skopeo copy -q --dest-decompress oci:"$L:$TAG" dir:"$work/plain-dir"
skopeo copy -q --dest-oci-accept-uncompressed-layers dir:"$work/plain-dir" oci:"$out/image-plain:$TAG"
rm -rf "$work/plain-dir"

# ---- one-layer images of 64 MiB and 512 MiB -------------------------------------
# Content: real shared libraries, cut into 256 equal files.
pool="$work/pool"
find /usr/lib/x86_64-linux-gnu "$goroot/pkg/tool" -type f -size +64k 2>/dev/null | sort | xargs cat 2>/dev/null | head -c $((512 << 20)) >"$pool"
for mib in 64 512; do
	d="$work/files-$mib"
	mkdir -p "$d"
	head -c $((mib << 20)) "$pool" | (cd "$d" && split -a 3 -d -b $((mib << 12)) - f)
	find "$d" -exec touch -h -d "@$T" {} +
	S="$work/size$mib"
	umoci init --layout "$S"
	umoci new --image "$S:$TAG"
	insert "$S" "$d" /data
	umoci config $(hist) --history.created_by=config --image "$S:$TAG" \
		--created "$T_RFC" --architecture amd64 --os linux
	umoci gc --layout "$S"
	cp -r "$S" "$out/size$mib"
	rm -rf "$d"
done

# The 512 MiB layer recompressed to zstd by skopeo.
skopeo copy -q --dest-compress-format zstd oci:"$out/size512:$TAG" oci:"$out/size512-zstd:$TAG"

for d in image image-zstd image-plain size64 size512 size512-zstd; do
	skopeo inspect oci:"$out/$d:$TAG" >/dev/null
done
du -sh "$out"/*
