#!/bin/sh
# make-testdata.sh: regenerate the real-tool OCI layouts under testdata/.
#
# Needs (run as root, so that ownership is kept): umoci (0.4.7 was used),
# skopeo (1.9.3 was used), the Debian package busybox-static (for /bin/busybox
# and /usr/share/doc/busybox-static), GNU coreutils/findutils.
# No network is used: skopeo only copies between local oci: directories.
#
#   sh testdata/make-testdata.sh            # from the repository root
#
# Everything that the tools let us pin is pinned (file mtimes, config
# "created", history "created"), so a rerun with the same tool versions and the
# same busybox-static package produces the same digests. The committed layouts
# are the fixtures; this script documents how they were made.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
TAG=1.35
# Fixed times: T1 for the base layer, T2 for everything changed later.
T1=1700000000 # 2023-11-14T22:13:20Z
T2=1700086400 # 2023-11-15T22:13:20Z
T3=1700172800 # 2023-11-16T22:13:20Z
T1_RFC=2023-11-14T22:13:20Z
T2_RFC=2023-11-15T22:13:20Z
T3_RFC=2023-11-16T22:13:20Z

for f in /bin/busybox /usr/share/doc/busybox-static/copyright; do
	[ -e "$f" ] || { echo "missing $f: apt-get install busybox-static" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
L="$work/busybox"
B="$work/bundle"
export TZ=UTC
umask 022

hist() { # common history flags: $1 = created time
	echo "--history.created=$1 --history.author=ociclip-testdata"
}

# pin: set mtime (and atime) of everything newer than the marker to @$1,
# without following symlinks.
pin_newer() {
	find "$B/rootfs" -newer "$work/marker" -exec touch -h -d "@$1" {} +
	touch -h -d "@$1" "$B/rootfs"
}

umoci init --layout "$L"
umoci new --image "$L:$TAG"

# ---- layer 1: the base system, written by "umoci repack" --------------------
umoci unpack --image "$L:$TAG" "$B"
R="$B/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/root" "$R/tmp" "$R/home/user" "$R/usr/bin" \
	"$R/usr/local/bin" "$R/usr/share/doc" "$R/var/empty"
cp /bin/busybox "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
for n in sh ls cat; do ln -s busybox "$R/bin/$n"; done
ln "$R/bin/busybox" "$R/bin/true"                  # hard link -> tar TypeLink
ln -s ../../bin/busybox "$R/usr/bin/env"           # relative symlink
ln -s /bin/busybox "$R/usr/bin/vi"                 # absolute symlink
cp -r /usr/share/doc/busybox-static "$R/usr/share/doc/busybox-static"
rm -f "$R/usr/share/doc/busybox-static/changelog.Debian.gz" \
	"$R/usr/share/doc/busybox-static/changelog.Debian.amd64.gz"
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo busybox >"$R/etc/hostname"
cat >"$R/etc/os-release" <<'EOF'
NAME="ociclip busybox test image"
ID=busybox
VERSION_ID=1.35
EOF
: >"$R/etc/empty"                                  # zero-length file
printf '#!/bin/sh\necho setuid demo\n' >"$R/usr/local/bin/suid-demo"
chmod 04755 "$R/usr/local/bin/suid-demo"           # setuid bit
chmod 01777 "$R/tmp"                               # sticky bit
chmod 0700 "$R/root"
printf 'export PS1="$ "\n' >"$R/home/user/.profile"
echo "hello from user" >"$R/home/user/notes.txt"
chown -R 1000:1000 "$R/home/user"
chmod 0750 "$R/home/user"
find "$R" -exec touch -h -d "@$T1" {} +
umoci repack $(hist "$T1_RFC") --history.created_by="base: busybox-static files" \
	--image "$L:$TAG" "$B"
rm -rf "$B"

# ---- layer 2: changes, whiteouts, dir replaced by file ("umoci repack") -----
umoci unpack --image "$L:$TAG" "$B"
R="$B/rootfs"
touch "$work/marker"
sleep 1 # so that every change below is strictly newer than the marker
rm "$R/etc/hostname"                               # -> etc/.wh.hostname
rm -r "$R/usr/share/doc/busybox-static/examples/udhcp" # -> whiteout of a dir
echo "user:x:1000:1000:user:/home/user:/bin/sh" >>"$R/etc/passwd"
echo "Welcome to the ociclip busybox test image." >"$R/etc/motd"
chmod 0600 "$R/etc/group"                          # metadata-only change
rmdir "$R/var/empty"
echo "now a file" >"$R/var/empty"                  # directory replaced by a file
rm "$R/bin/ls"
ln -s /bin/busybox "$R/bin/ls"                     # symlink target changed
pin_newer "$T2"
umoci repack $(hist "$T2_RFC") --history.created_by="changes: whiteouts" \
	--image "$L:$TAG" "$B"
rm -rf "$B"

# ---- layer 3: more changes ("umoci repack") --------------------------------
umoci unpack --image "$L:$TAG" "$B"
R="$B/rootfs"
touch "$work/marker"
sleep 1
rm "$R/var/empty"
mkdir "$R/var/empty"                               # file replaced by a directory
echo "inside the new directory" >"$R/var/empty/file"
ln "$R/etc/motd" "$R/etc/issue"                    # new name for a lower-layer inode
rm "$R/bin/cat"                                    # whiteout of a symlink
mkdir -p "$R/opt/app/bin"
printf '#!/bin/sh\necho app\n' >"$R/opt/app/bin/app"
chmod 0755 "$R/opt/app/bin/app"
ln "$R/opt/app/bin/app" "$R/opt/app/bin/app-link"  # hard link within the layer
ln -s app "$R/opt/app/bin/app-sym"
pin_newer "$T3"
umoci repack $(hist "$T3_RFC") --history.created_by="more changes" \
	--image "$L:$TAG" "$B"
rm -rf "$B"

# ---- image config ------------------------------------------------------------
umoci config $(hist "$T3_RFC") --history.created_by="config" \
	--image "$L:$TAG" \
	--created "$T3_RFC" --author "ociclip testdata" \
	--architecture amd64 --os linux \
	--config.cmd /bin/sh \
	--config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env LANG=C.UTF-8 \
	--config.workingdir /root \
	--config.label org.opencontainers.image.title=busybox-test \
	--config.label org.opencontainers.image.version=$TAG \
	--config.exposedports 8080/tcp \
	--config.stopsignal SIGTERM
umoci gc --layout "$L"

# ---- skopeo copies -------------------------------------------------------------
# zstd layers (recompressed by skopeo; manifest and layer media types updated).
skopeo copy -q --dest-compress-format zstd --dest-compress-level 19 oci:"$L:$TAG" oci:"$work/busybox-zstd:$TAG"
# Uncompressed layers: oci -> dir (decompressed) -> oci (accepting uncompressed layers).
skopeo copy -q --dest-decompress oci:"$L:$TAG" dir:"$work/plain-dir"
skopeo copy -q --dest-oci-accept-uncompressed-layers dir:"$work/plain-dir" \
	oci:"$work/busybox-plain:$TAG"

# ---- umoci-insert: a tiny image whose last layers "umoci insert" wrote ----------
# umoci 0.4.7 "insert" closes the stream before the tar writer is closed: the
# layer tar has no padding after the last file's data and no end-of-archive
# blocks (umoci issue #436). GNU tar reports "Unexpected EOF in archive" on
# layer 2; Go's archive/tar reads it without error. umoci itself unpacks it.
# Layer 1 (repack) is a normal tar. Layer 2 (insert --opaque) has an opaque
# whiteout and a 63-byte file with missing padding. Layer 3 (insert --whiteout)
# is a single 512-byte header with no end blocks.
U="$work/umoci-insert"
umoci init --layout "$U"
umoci new --image "$U:$TAG"
umoci unpack --image "$U:$TAG" "$B"
R="$B/rootfs"
mkdir -p "$R/etc" "$R/usr/share/doc"
cp -r /usr/share/doc/busybox-static/examples "$R/usr/share/doc/busybox-static"
echo busybox >"$R/etc/hostname"
echo "to be whited out" >"$R/etc/notes.txt"
find "$R" -exec touch -h -d "@$T1" {} +
umoci repack $(hist "$T1_RFC") --history.created_by="base" --image "$U:$TAG" "$B"
rm -rf "$B"
mkdir -p "$work/doc"
echo "The documentation was replaced by this file (opaque whiteout)." >"$work/doc/README"
touch -h -d "@$T2" "$work/doc/README" "$work/doc"
umoci insert $(hist "$T2_RFC") --history.created_by="opaque: replace doc dir" \
	--image "$U:$TAG" --opaque "$work/doc" /usr/share/doc/busybox-static
umoci insert $(hist "$T3_RFC") --history.created_by="whiteout: remove notes" \
	--image "$U:$TAG" --whiteout /etc/notes.txt
umoci config $(hist "$T3_RFC") --history.created_by="config" --image "$U:$TAG" \
	--created "$T3_RFC" --architecture amd64 --os linux --config.cmd /bin/sh
umoci gc --layout "$U"

# ---- checks, then install into testdata/ ---------------------------------------
for d in busybox busybox-zstd busybox-plain umoci-insert; do
	umoci ls --layout "$work/$d" >/dev/null
	skopeo inspect oci:"$work/$d:$TAG" >/dev/null
	chmod -R u+rwX,go+rX "$work/$d"
	find "$work/$d" -type f -exec chmod 0644 {} +
	rm -rf "${here:?}/$d"
	cp -r "$work/$d" "$here/$d"
done
du -sh "$here"/busybox* "$here"/umoci-insert
