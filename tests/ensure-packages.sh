#!/usr/bin/env bash
# Usage: tests/ensure-packages.sh PACKAGE...
# Installs the Debian packages that are missing, and does nothing (no apt) when all are there.
# Needs root (or sudo).
set -euo pipefail

missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing host packages: ${missing[*]}" >&2
# Setups may run side by side (make test builds the test cluster in the background): one apt at
# a time, waiting for the others (and for any other dpkg user) instead of failing.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive flock /var/lock/backstage-k8s-apt.lock
     apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq >&2
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
