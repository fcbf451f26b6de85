#!/usr/bin/env bash
# Profiles the server's cold and warm paths on the benchmark closure with perf (software clock: this
# VM exposes no hardware counters, `perf stat -e instructions true` says "not supported").
#
# usage: bench/profile.sh [CODEC] [ROOT-OUT-LINK]
#   CODEC defaults to zstd; the closure defaults to the one `make bench` built
#   (/var/tmp/nix-netboot-serve-bench/root). Run `make bench` (or scripts/bench.sh) once first.
# Writes perf data and the top of each report to /var/tmp/nix-netboot-serve-bench/profile-CODEC/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
codec=${1:-zstd}
root=$(readlink -f "${2:-/var/tmp/nix-netboot-serve-bench/root}")
binary="$repo/.build-bench/release/nix-netboot-serve"
out=/var/tmp/nix-netboot-serve-bench/profile-$codec
name=$(basename "$root")
rm -rf "$out"
mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$binary" --listen "127.0.0.1:$port" --state-dir "$out/state" --compression "$codec" --log-level warning \
    >"$out/server.log" 2>&1 &
server=$!
perf_pid=
cleanup() {
    [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
    kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    rm -rf "$out/state"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
done
url="http://127.0.0.1:$port/boot/$name/initrd"

profile() {  # profile NAME COMMAND...: perf on the server while COMMAND runs
    local label=$1
    shift
    perf record -q -e cpu-clock -F 999 -g -p "$server" -o "$out/$label.data" 2>"$out/$label.perf.log" &
    perf_pid=$!
    sleep 0.5
    local cpu0 cpu1 t0 t1
    cpu0=$(awk '{print $14+$15}' "/proc/$server/stat")
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    cpu1=$(awk '{print $14+$15}' "/proc/$server/stat")
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf_pid=
    echo "$label: wall $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s, server CPU $(awk -v a="$cpu0" -v b="$cpu1" -v t="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/t}') s, VmHWM $(grep VmHWM "/proc/$server/status" | awk '{print $2, $3}')" | tee -a "$out/summary.txt"
    perf report -i "$out/$label.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -45 >"$out/$label.top.txt"
    perf report -i "$out/$label.data" --stdio --no-children --sort dso --percent-limit 0.5 -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -20 >"$out/$label.dso.txt"
}

cold() { curl -sS -o /dev/null "$url"; }
warm() { for _ in $(seq 1 10); do curl -sS -o /dev/null "$url"; done; }
profile cold cold
profile warm warm
echo "perf data and reports in $out"
