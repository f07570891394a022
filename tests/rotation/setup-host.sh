#!/usr/bin/env bash
# Install the host tools the rotation tests need: PostgreSQL 15 for the tests of
# postgres_server_certificate against a real server. Idempotent: apt runs only when a package
# is missing. Needs root (or sudo).
set -euo pipefail

HOST_PACKAGES=(postgresql-15 ca-certificates)

"$(dirname "$0")/../ensure-packages.sh" "${HOST_PACKAGES[@]}"
