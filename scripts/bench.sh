#!/usr/bin/env bash
# The benchmark of issue 5 (`make bench`): installs what it needs from Debian, sets up Nix, builds the
# release server into its own scratch path (.build-bench, git-ignored), then runs bench/bench.py,
# which builds the benchmark closures from this machine's files, runs everything on 127.0.0.1 and
# writes the table to stdout and bench/results/latest.md.
#
# usage: scripts/bench.sh [DRIVER OPTIONS]   e.g. scripts/bench.sh --cold-runs 5 --note "quiet machine"
#        scripts/bench.sh --parts bigpath,herd   some parts only (cold, bigpath, concurrent, huge, herd)
#        scripts/bench.sh dispatch [OPTIONS]  dispatch throughput only (bench/dispatch.py)
# (python3 bench/bench.py --help lists them)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

packages=(nginx-light curl python3 cpio zstd xz-utils gzip findutils procps wrk)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nginx-light or the full nginx: either serves static files with sendfile.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null; then
    missing=("${missing[@]/nginx-light}")
fi
if [ -n "${missing[*]// /}" ]; then
    echo "bench: installing ${missing[*]}"
    # Without a system-wide nginx on port 80: the benchmark starts its own on loopback.
    # shellcheck disable=SC2068
    bash "$repo/scripts/apt-install.sh" ${missing[@]}
fi

bash "$repo/scripts/setup-debian.sh"

echo "bench: building the release server (.build-bench)"
swift build --package-path "$repo" -c release --product nix-netboot-serve --scratch-path "$repo/.build-bench"

if [ "${1:-}" = "dispatch" ]; then
    shift
    exec python3 "$repo/bench/dispatch.py" --binary "$repo/.build-bench/release/nix-netboot-serve" "$@"
fi
exec python3 "$repo/bench/bench.py" --binary "$repo/.build-bench/release/nix-netboot-serve" "$@"
