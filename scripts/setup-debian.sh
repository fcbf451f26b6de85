#!/usr/bin/env bash
# Installs everything nix-netboot-serve and its tests need on a fresh Debian 12 machine:
# the C libraries, Nix (single-user as root, no substituters; its daemon only when a deploy test
# starts one), archive tools, QEMU and iPXE (the NIC ROMs and the TFTP builds), dnsmasq, nginx,
# systemd's tools, promtool, and a Debian kernel image for the boot tests. Safe to run again.
set -euo pipefail

packages=(
    pkg-config zlib1g-dev liblzma-dev libzstd-dev libcurl4-openssl-dev
    nix-bin busybox-static cpio libarchive-tools zstd xz-utils gzip
    qemu-system-x86 qemu-utils ipxe-qemu ovmf procps util-linux
    ipxe dnsmasq-base iproute2  # the PXE chain test: TFTP builds of iPXE, DHCP, namespaces
    chromium  # headless, for the status page test
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packages whose services must not start here: nginx (the fleet test starts its own on loopback),
# systemd (only `systemd-analyze verify` is used; systemd is not PID 1 on these machines).
service_packages=()
command -v nginx >/dev/null || service_packages+=(nginx-light)
command -v systemd-analyze >/dev/null || service_packages+=(systemd)
if [ ${#service_packages[@]} -gt 0 ]; then
    echo "setup: installing ${service_packages[*]} (their services are not started)"
    bash "$(dirname "$0")/apt-install.sh" "${service_packages[@]}"
fi

# promtool (Debian's prometheus package), for the test that checks /metrics; the package's own
# Prometheus server is never started.
if ! command -v promtool >/dev/null; then
    echo "setup: installing prometheus (for promtool; its daemon is not started)"
    bash "$(dirname "$0")/apt-install.sh" prometheus
fi

# Nix, single-user as root: no build users, no sandbox, and no substituters by default
# (the machine reaches no public cache; a test passes its own through NIX_CONFIG).
mkdir -p /etc/nix /nix/var/nix/gcroots /nix/var/nix/profiles
conf=/etc/nix/nix.conf
touch "$conf"
set_conf() {
    if grep -qE "^$1 *=" "$conf"; then
        sed -i -E "s|^$1 *=.*|$1 = $2|" "$conf"
    else
        echo "$1 = $2" >>"$conf"
    fi
}
set_conf build-users-group ""
set_conf sandbox false
set_conf substituters ""
set_conf experimental-features "nix-command flakes"

echo "setup: done"
