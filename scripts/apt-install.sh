#!/usr/bin/env bash
# Installs Debian packages without letting them start their services (nginx, prometheus): a
# policy-rc.d that denies service starts is put in place for this install only, and only if the
# machine has none of its own.
#
# usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
fi
trap '[ "$added_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
