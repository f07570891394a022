#!/usr/bin/env bash
# Install what the image import tests need: containerd (and its ctr) to import into when the test
# cluster is not up, umoci and busybox-static to build the test image offline, podman and
# docker-registry (Debian's) to test streaming from a local image store and the registry method.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

HOST_PACKAGES=(containerd umoci busybox-static tar podman docker-registry)

missing=()
for pkg in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing host packages: ${missing[*]}" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
