#!/usr/bin/env bash
# Runs every test on a fresh Debian machine: installs what the tests need, then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
# The boot tests fetch a Debian kernel once; the path is handed to them.
if [ -x scripts/fetch-kernel.sh ]; then
    NNS_TEST_KERNEL=$(bash scripts/fetch-kernel.sh)
    export NNS_TEST_KERNEL
fi
exec swift test "$@"
