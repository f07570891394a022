#!/usr/bin/env bash
# Install what the portal check needs, idempotently, and print the directory to run it from:
# Debian's chromium (the browser) and playwright-core from the npm registry (pinned by
# package-lock.json) into $BACKSTAGE_K8S_CACHE/browser/<hash of the lockfile>/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BACKSTAGE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstage-k8s}

packages=(chromium fonts-dejavu-core)
# Node 20 may come from elsewhere than Debian (bookworm's is 18): Debian's only when there is none.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
"$here/../../../tests/ensure-packages.sh" "${packages[@]}"

key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=$cache/browser/$key
mkdir -p "$cache/browser"
# One install at a time: make test's two lanes may both reach it.
exec 9>"$cache/browser/.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    # playwright-core has no install script; it must not download a browser of its own.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
    touch "$dir/.complete"
fi
cp "$here/portal.mjs" "$dir/portal.mjs"
echo "$dir"
