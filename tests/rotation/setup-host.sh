#!/usr/bin/env bash
# Install the host tools the rotation tests need: PostgreSQL 15 for the tests of
# postgres_server_certificate against a real server. Idempotent: apt runs only when a package
# is missing. Needs root (or sudo).
set -euo pipefail

HOST_PACKAGES=(postgresql-15 ca-certificates)

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
