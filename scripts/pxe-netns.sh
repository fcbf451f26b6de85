#!/usr/bin/env bash
# The boot network of the PXE chain test (Tests/NetbootHostTests/Deploy/PXEChainTests.swift), in
# network namespaces of its own: nothing in them is routed anywhere else.
#
# usage: scripts/pxe-netns.sh up NAME TAPS     (as root)
#        scripts/pxe-netns.sh down NAME
#
#   up    creates namespace NAME: loopback, bridge br0 with 10.231.0.1/24 (the boot server: the
#         proxy-DHCP dnsmasq and nix-netboot-serve), tap devices tap0 … tap<TAPS-1> on the bridge
#         (for QEMU guests: -netdev tap,ifname=tapN,script=no,downscript=no, run in NAME), and
#         namespace NAME-dhcp joined to the bridge by a veth pair, holding 10.231.0.2/24 and
#         fd00:231::2/64 on dhcp0 (the network's own DHCP server, and its IPv6 router: iPXE waits
#         for a router advertisement before it boots). On failure it removes what it made.
#   down  ends what still runs in the two namespaces (processes the test started there) and
#         deletes them; a namespace already gone is not an error.
#
# Exit status 0 on success, 1 when a step fails, 2 on bad usage.
set -euo pipefail

usage() { sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

down() {
    local name=$1 ns pid
    for ns in "$name" "$name-dhcp"; do
        ip netns list | grep -q "^$ns\( \|$\)" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.2
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "$ns"
    done
}

up() {
    local name=$1 taps=$2 i
    trap 'down "$name"' ERR
    ip netns add "$name"
    ip netns add "$name-dhcp"
    ip -n "$name" link set lo up
    ip -n "$name-dhcp" link set lo up
    ip -n "$name" link add br0 type bridge
    ip -n "$name" addr add 10.231.0.1/24 dev br0
    ip -n "$name" link set br0 up
    for ((i = 0; i < taps; i++)); do
        ip -n "$name" tuntap add dev "tap$i" mode tap
        ip -n "$name" link set "tap$i" master br0 up
    done
    ip -n "$name" link add veth0 type veth peer name dhcp0 netns "$name-dhcp"
    ip -n "$name" link set veth0 master br0 up
    ip -n "$name-dhcp" addr add 10.231.0.2/24 dev dhcp0
    ip -n "$name-dhcp" addr add fd00:231::2/64 dev dhcp0 nodad
    ip -n "$name-dhcp" link set dhcp0 up
    trap - ERR
}

[ $# -ge 2 ] || usage
[[ "$2" =~ ^[A-Za-z0-9_.-]{1,24}$ ]] || { echo "pxe-netns: bad namespace name $2" >&2; exit 2; }
case "$1" in
    up) [ $# -eq 3 ] && [[ "$3" =~ ^[0-9]$ ]] || usage; up "$2" "$3" ;;
    down) [ $# -eq 2 ] || usage; down "$2" ;;
    *) usage ;;
esac
