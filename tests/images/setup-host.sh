#!/usr/bin/env bash
# Install the host tools the offline image builds and their tests need.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

# mmdebstrap: Debian root filesystems; umoci: OCI layouts; runc: image smoke
# tests without a cluster; gpg: mmdebstrap's signed-by check; python3: JSON;
# util-linux (nsenter) and procps (ps): the runc tests.
HOST_PACKAGES=(mmdebstrap umoci runc gpg debian-archive-keyring python3 ca-certificates util-linux procps)

ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "installing host packages: ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_packages "${HOST_PACKAGES[@]}"
