# shellcheck shell=bash
# Base of the execution environment (tests/images/ee): Debian bookworm's Python 3.11
# with pip and venv, and the CA certificates, from Debian packages only. What
# ansible-builder needs of a base image: bash for its build scripts and the EE's
# entrypoint, Python with pip (Debian disables ensurepip for its system Python, so the
# definition skips it) and venv, coreutils, grep and getent. Built as
# root's image: ansible-builder runs its stages as root, and the EE it makes runs as uid 1000.
IMAGE_REPO=backstage-k8s/ee-base
IMAGE_TAG_PREFIX=python3.11
IMAGE_TITLE="backstage.k8s execution environment base"
IMAGE_DESCRIPTION="Debian bookworm with Python 3, the base tests/images/build ee gives ansible-builder"
BASE_VARIANT=essential
BASE_PACKAGES=(python3 python3-pip python3-venv ca-certificates)
IMAGE_USER=0:0
IMAGE_CMD=(/bin/bash)
IMAGE_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8
)
