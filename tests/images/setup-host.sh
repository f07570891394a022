#!/usr/bin/env bash
# Install the host tools the offline image builds and their tests need.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

# mmdebstrap: Debian root filesystems; umoci: OCI layouts; runc: image smoke
# tests without a cluster; gpg: mmdebstrap's signed-by check; python3: JSON;
# util-linux (nsenter) and procps (ps): the runc tests; podman: builds the
# execution environment that ansible-builder describes (tests/images/ee).
HOST_PACKAGES=(mmdebstrap umoci runc gpg debian-archive-keyring python3 ca-certificates util-linux procps podman)

"$(dirname "$0")/../ensure-packages.sh" "${HOST_PACKAGES[@]}"
