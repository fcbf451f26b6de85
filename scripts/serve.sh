#!/usr/bin/env bash
# Runs nix-netboot-serve on a fresh Debian machine: installs what is missing, builds a release binary,
# then starts it with the embedded defaults (state in ./nix-netboot-serve-state, 127.0.0.1:3030).
# Extra arguments go to the server, e.g. scripts/serve.sh --listen 0.0.0.0:3030 --compression xz
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup-debian.sh"
swift build --package-path "$repo" -c release --product nix-netboot-serve
exec "$repo/.build/release/nix-netboot-serve" "$@"
