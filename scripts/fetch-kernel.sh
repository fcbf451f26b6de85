#!/usr/bin/env bash
# Fetches the Debian kernel the boot tests use, without installing it.
#
# usage: scripts/fetch-kernel.sh [CACHE_DIR]
#
# Downloads the linux-image-6.1.*-amd64 package that the linux-image-amd64 metapackage depends on
# (apt-get download, no installation), takes boot/vmlinuz-* out of it, keeps it under CACHE_DIR
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/nix-netboot-serve/kernel) and prints the absolute path of
# the vmlinuz on stdout. Nothing else goes to stdout; apt's chatter goes to stderr.
# Running it again reuses the cached kernel (no download, no apt-get update).
set -euo pipefail

log() { echo "fetch-kernel: $*" >&2; }
die() { log "$*"; exit 1; }

cache_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-netboot-serve/kernel}
mkdir -p "$cache_dir"
cache_dir=$(cd "$cache_dir" && pwd -P)

# The versioned kernel package linux-image-amd64 points at, from apt's lists (empty if unknown).
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n -E 's/^ *Depends: (linux-image-6\.1\.[^ ]*-amd64)$/\1/p' | head -n 1
}

package=$(kernel_package)
if [ -z "$package" ]; then
    # No usable package lists. An earlier run may have left a kernel: use it rather than asking
    # the network (exactly one, otherwise we cannot tell which one is wanted).
    shopt -s nullglob
    cached=("$cache_dir"/vmlinuz-6.1.*-amd64)
    shopt -u nullglob
    if [ ${#cached[@]} -eq 1 ]; then
        echo "${cached[0]}"
        exit 0
    fi
    log "linux-image-amd64 is unknown to apt; running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    package=$(kernel_package)
    [ -n "$package" ] || die "linux-image-amd64 does not depend on a linux-image-6.1.*-amd64 package"
fi

version=${package#linux-image-}
target="$cache_dir/vmlinuz-$version"
if [ -s "$target" ]; then
    echo "$target"
    exit 0
fi

# apt-get download drops privileges to _apt when it runs as root; that user must be able to reach
# and write the folder (a cache under /root is not reachable), or apt warns and downloads
# unsandboxed. So download into a fresh world-writable folder under the temporary directory.
work=$(mktemp -d "${TMPDIR:-/tmp}/nns-fetch-kernel.XXXXXX")
partial=""
trap 'rm -rf "$work"; [ -z "$partial" ] || rm -f "$partial"' EXIT
chmod 0777 "$work"

log "downloading $package"
(cd "$work" && apt-get download -q "$package" >&2) || die "apt-get download $package failed"
shopt -s nullglob
debs=("$work"/"${package}"_*.deb)
shopt -u nullglob
[ ${#debs[@]} -eq 1 ] || die "expected one ${package}_*.deb in $work, found ${#debs[@]}"

mkdir "$work/root"
dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$work/root" ./boot
[ -s "$work/root/boot/vmlinuz-$version" ] || die "$package has no boot/vmlinuz-$version"

# Publish atomically: a concurrent or interrupted run never leaves a partial file at $target.
partial=$(mktemp "$cache_dir/.vmlinuz-$version.XXXXXX")
cp "$work/root/boot/vmlinuz-$version" "$partial"
chmod 0644 "$partial"
mv -f "$partial" "$target"
partial=""
log "kernel $version cached"
echo "$target"
