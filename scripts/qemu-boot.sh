#!/usr/bin/env bash
# Netboots a QEMU guest with the real iPXE ROM from an HTTP server on 127.0.0.1 and waits for the
# boot-test init (Tests/fixtures/boot/system.nix) to report.
#
# usage: scripts/qemu-boot.sh (--port PORT --url PATH | --tap IFNAME) [--uefi] [--mac MAC] [--timeout SECONDS] [--log FILE]
#
#   --port PORT       the HTTP server's port on 127.0.0.1
#   --url PATH        the path iPXE fetches first (its DHCP boot file is http://10.0.2.100PATH),
#                     e.g. /netboot.ipxe; must start with "/"
#   --tap IFNAME      instead: the existing tap device IFNAME (run the script in its network
#                     namespace), on a network whose DHCP tells the firmware what to boot. The NIC
#                     is then the firmware's own: under --uefi a virtio-net-pci without option ROM
#                     (OVMF's PXE client), else an e1000 with iPXE's ROM
#   --uefi            boot OVMF on q35 instead of SeaBIOS on pc
#   --mac MAC         the network card's MAC address (default: QEMU's 52:54:00:12:34:56)
#   --timeout SECONDS give up after this long (default 240)
#   --log FILE        keep the serial console log there (default: a temporary file, removed)
#
# The guest's network is QEMU user networking with restrict=on: it reaches nothing but
# 10.0.2.100:80, which QEMU forwards, one relay process per TCP connection, to 127.0.0.1:PORT.
#
# Exit status 0 when the console shows NNS-BOOT-OK; 1 on NNS-BOOT-FAIL, a kernel panic, iPXE
# giving up, QEMU stopping, or the timeout (the last 80 lines of the console then go to stderr);
# 2 on bad usage or a missing tool. QEMU and every relay are ended by PID on the way out.
set -euo pipefail

usage() {
    sed -n '5,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() { echo "qemu-boot: $*" >&2; exit 2; }

port="" url="" tap="" uefi=0 timeout=240 log="" mac=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
        --url) [ $# -ge 2 ] || usage; url=$2; shift 2 ;;
        --tap) [ $# -ge 2 ] || usage; tap=$2; shift 2 ;;
        --uefi) uefi=1; shift ;;
        --mac) [ $# -ge 2 ] || usage; mac=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
        --log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "qemu-boot: unknown argument $1" >&2; usage ;;
    esac
done
if [ -n "$tap" ]; then
    [[ "$tap" =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "--tap needs an interface name"
else
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port needs a port number"
    [[ "$url" == /* ]] || die "--url needs a path starting with /"
fi
[ -z "$mac" ] || [[ "$mac" =~ ^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$ ]] || die "--mac needs a MAC address such as 52:54:00:12:34:56"
[[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || die "--timeout needs a positive number of seconds"

rom=/usr/lib/ipxe/qemu/efi-e1000.rom
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
busybox=$(command -v busybox || true)
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed"
[ -n "$busybox" ] || die "busybox is not installed"
[ -r "$rom" ] || die "$rom is missing (package ipxe-qemu)"
if [ $uefi -eq 1 ]; then
    [ -r "$ovmf_code" ] && [ -r "$ovmf_vars" ] || die "OVMF is missing (package ovmf)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/nns-qemu-boot.XXXXXX")
[ -n "$log" ] || log="$work/serial.log"
mkdir -p "$(dirname "$log")"
: >"$log"
mkdir "$work/relays"
qemu_pid=""

cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    # QEMU first, so that no relay starts after we have listed them.
    if [ -n "$qemu_pid" ]; then
        kill "$qemu_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$qemu_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    # Relays are not QEMU's children, so QEMU's end is not theirs: each left its PID here.
    # A relay that ended already may have had its PID reused, so check it is still our netcat.
    for f in "$work"/relays/*; do
        [ -e "$f" ] || continue
        pid=${f##*/}
        if [ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" = "$busybox nc 127.0.0.1 $port " ]; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One relay per guest connection: record our PID, then become the netcat (same PID).
cat >"$work/relay" <<EOF
#!/bin/sh
: >"$work/relays/\$\$"
exec "$busybox" nc 127.0.0.1 $port
EOF
chmod 0755 "$work/relay"

# QEMU option values escape "," by doubling it.
qemu_escape() { printf '%s' "${1//,/,,}"; }

args=(
    -accel tcg
    -m 1024
    -smp 1
    -nodefaults
    -no-reboot
    -display none
    -serial "file:$(qemu_escape "$log")"
    -monitor none
)
if [ -z "$tap" ]; then
    args+=(
        -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:$(qemu_escape "$work/relay"),bootfile=$(qemu_escape "http://10.0.2.100$url")"
        -device "e1000,netdev=n0,romfile=$rom,bootindex=0${mac:+,mac=$mac}"
    )
elif [ $uefi -eq 1 ]; then
    args+=(-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,romfile=,bootindex=0${mac:+,mac=$mac}")
else
    args+=(-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "e1000,netdev=n0,romfile=$rom,bootindex=0${mac:+,mac=$mac}")
fi
if [ $uefi -eq 1 ]; then
    cp "$ovmf_vars" "$work/OVMF_VARS.fd"
    args+=(
        -machine q35
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$(qemu_escape "$ovmf_code")"
        -drive "if=pflash,format=raw,unit=1,file=$(qemu_escape "$work/OVMF_VARS.fd")"
    )
else
    # SeaBIOS prints the text screen (its own messages and iPXE's) on the serial port only when
    # told which port: fw_cfg etc/sercon-port, a little-endian integer (0x3f8, COM1).
    printf '\370\003' >"$work/sercon-port"
    args+=(-machine pc -fw_cfg "name=etc/sercon-port,file=$(qemu_escape "$work/sercon-port")")
fi

firmware=BIOS
[ $uefi -eq 0 ] || firmware=UEFI
if [ -n "$tap" ]; then
    echo "qemu-boot: $firmware network boot on $tap (timeout ${timeout}s, log $log)" >&2
else
    echo "qemu-boot: $firmware boot of http://10.0.2.100$url via 127.0.0.1:$port (timeout ${timeout}s, log $log)" >&2
fi
start=$SECONDS
qemu-system-x86_64 "${args[@]}" </dev/null >"$work/qemu.out" 2>&1 &
qemu_pid=$!

report_failure() {
    echo "qemu-boot: FAIL ($1) after $((SECONDS - start))s; last 80 lines of the console:" >&2
    tail -n 80 "$log" | tr -d '\r' | sed 's/\x1b\[[0-9;?=]*[a-zA-Z]//g' >&2 || true
    # (QEMU always warns that etc/sercon-port lacks the "opt/" prefix: SeaBIOS wants that name.)
    if grep -qv 'etc/sercon-port' "$work/qemu.out"; then
        echo "qemu-boot: QEMU said:" >&2
        grep -v 'etc/sercon-port' "$work/qemu.out" >&2
    fi
    exit 1
}

report_success() {
    echo "qemu-boot: OK after $((SECONDS - start))s: $(grep -a -m1 -o 'NNS-BOOT-OK.*' "$log" | tr -d '\r')" >&2
    exit 0
}

while :; do
    if grep -aq 'NNS-BOOT-OK' "$log"; then
        report_success
    fi
    if grep -aq 'NNS-BOOT-FAIL' "$log"; then
        report_failure "$(grep -a -m1 -o 'NNS-BOOT-FAIL.*' "$log" | tr -d '\r')"
    fi
    if grep -aq 'Kernel panic' "$log"; then
        report_failure "kernel panic"
    fi
    # iPXE gave up. Under SeaBIOS it says so itself; under OVMF, the firmware moves on to its next
    # boot option (its own PXE and HTTP boot, which would ask our server again, then the shell).
    if grep -aqE 'No more network devices|No bootable device|BdsDxe: failed to load|EFI Internal Shell' "$log"; then
        report_failure "iPXE did not boot a kernel"
    fi
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
        sleep 0.2   # the log may still be flushing a last line
        if grep -aq 'NNS-BOOT-OK' "$log"; then
            report_success
        fi
        report_failure "QEMU stopped"
    fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
        report_failure "timeout"
    fi
    sleep 0.5
done
