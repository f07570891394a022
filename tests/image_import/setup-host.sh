#!/usr/bin/env bash
# Install what the image import tests need: containerd (and its ctr) to import into when the test
# cluster is not up, umoci and busybox-static to build the test image offline, podman and
# docker-registry (Debian's) to test streaming from a local image store and the registry method;
# podman-docker: the docker command line (on podman's engine) for the role's docker source.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

HOST_PACKAGES=(containerd umoci busybox-static tar podman podman-docker docker-registry)

"$(dirname "$0")/../ensure-packages.sh" "${HOST_PACKAGES[@]}"
