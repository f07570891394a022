#!/usr/bin/env bash
# Install what building and testing the test Backstage app needs on this host.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
#
# Node 20+ with corepack must already be there (Debian 12's own nodejs is 18):
# this script checks it and says so instead of installing an older one.
set -euo pipefail

# postgresql-15: the real database the backend is tested against;
# chromium: the headless browser that opens the built frontend;
# python3, ca-certificates: the test itself and registry downloads.
HOST_PACKAGES=(postgresql-15 postgresql-client-15 chromium python3 ca-certificates)

"$(dirname "$0")/../ensure-packages.sh" "${HOST_PACKAGES[@]}"

if ! command -v node >/dev/null || ! command -v corepack >/dev/null; then
    echo "backstage-app: Node 20+ with corepack is needed on PATH" >&2
    exit 1
fi
case "$(node --version)" in
    v2[0-9].*) ;;
    *) echo "backstage-app: Node 20+ is needed, found $(node --version)" >&2; exit 1 ;;
esac
