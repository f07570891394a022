#!/usr/bin/env bash
# Build the example Backstage app (examples/backstage-app) into the cache and
# print the output directory.
#
#   tests/backstage-app/build.sh
#
# Output: $BACKSTAGE_K8S_CACHE/backstage-app/<key>/
#   context/          the app's repository after `yarn install && yarn tsc &&
#                     yarn build:all`, as the image recipes (images/backstage-*)
#                     take it: what its .dockerignore leaves, without sources
#   backend/          production tree of the backend; run from this directory:
#                       node packages/backend --config app-config.yaml \
#                         --config app-config.production.yaml --config <deployment config>
#   frontend/dist/    static files of the frontend (index.html, static/)
#   build-info.json   versions and sizes
#
# <key> hashes the app's source files, the lockfile, this script and the Node
# version, so a second run with the same inputs only prints the directory.
# Needs: node 20+ on PATH with corepack (Yarn comes from the npm registry
# through it), network access to the npm registry for the first install.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../examples/backstage-app" && pwd)
script="${BASH_SOURCE[0]}"
cache=${BACKSTAGE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstage-k8s}
root="$cache/backstage-app"

log() { echo "backstage-app: $*" >&2; }

node_version=$(node --version)
case "$node_version" in
  v2[0-9].*) ;;
  *) log "Node 20 or newer is needed, found $node_version"; exit 1 ;;
esac

# Yarn 4, pinned by packageManager in package.json, through corepack from the
# registry npm is configured with.
registry=$(npm config get registry 2>/dev/null | sed 's#/*$##')
registry=${registry:-https://registry.npmjs.org}
export COREPACK_NPM_REGISTRY="$registry" COREPACK_ENABLE_DOWNLOAD_PROMPT=0
export YARN_NPM_REGISTRY_SERVER="$registry" YARN_ENABLE_TELEMETRY=0
export YARN_CACHE_FOLDER="$root/yarn-cache" YARN_ENABLE_GLOBAL_CACHE=0
export YARN_ENABLE_PROGRESS_BARS=0 CI=${CI:-true}
yarn() { corepack yarn "$@"; }

# The inputs: every file of the app except what installs and builds produce.
inputs() {
  (cd "$here" && find . \
      \( -name node_modules -o -name dist -o -name dist-types -o -path ./.yarn/cache \
         -o -path ./.yarn/unplugged -o -path ./.yarn/install-state.gz \) -prune -o \
      -type f ! -name README.md -print |
    LC_ALL=C sort)
}
key=$( {
  echo "node $node_version"
  sha256sum < "$script"
  (cd "$here" && inputs | xargs -d '\n' sha256sum)
} | sha256sum | cut -c1-16)
out="$root/$key"

if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

# One work tree, kept between builds: its node_modules make the next install
# (after a change of the sources or the lockfile) incremental.
work="$root/work"
rm -rf "$out.tmp"
mkdir -p "$work/src" "$out.tmp"
# Everything but the installed node_modules goes, then the sources come anew.
find "$work/src" -mindepth 1 -name node_modules -prune -o ! -type d -print0 | xargs -0r rm -f
find "$work/src" -mindepth 1 -type d -empty ! -path "*/node_modules*" -delete
(cd "$here" && inputs | tar -cf - -T -) | tar -xf - -C "$work/src"
start=$SECONDS

log "installing dependencies (frozen lockfile)"
(cd "$work/src" && yarn install --immutable) >&2

# About half a minute here; BACKSTAGE_APP_TYPECHECK=0 skips it.
if [ "${BACKSTAGE_APP_TYPECHECK:-1}" = 1 ]; then
  log "type-checking"
  (cd "$work/src" && yarn tsc --noEmit) >&2
fi

log "building the backend bundle"
(cd "$work/src" && yarn build:backend) >&2
log "building the frontend"
(cd "$work/src" && yarn workspace app build) >&2

log "installing the backend's production dependencies"
backend="$out.tmp/backend"
mkdir -p "$backend"
cp -r "$work/src/package.json" "$work/src/yarn.lock" "$work/src/.yarnrc.yml" "$work/src/.yarn" "$backend/"
rm -rf "$backend/.yarn/install-state.gz"
tar -xzf "$work/src/packages/backend/dist/skeleton.tar.gz" -C "$backend"
(cd "$backend" && NODE_ENV=production yarn workspaces focus --all --production) >&2
tar -xzf "$work/src/packages/backend/dist/bundle.tar.gz" -C "$backend"
cp "$work/src"/app-config.yaml "$work/src"/app-config.production.yaml "$backend/"
cp -r "$work/src/examples" "$backend/"
# Install-time leftovers the running backend never reads.
rm -rf "$backend/.yarn" "$backend/.yarnrc.yml" "$backend/node_modules/.yarn-state.yml"
find "$backend/node_modules" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' \
  -o -name '*.d.cts' -o -iname 'CHANGELOG.md' \) -type f -delete
find "$backend/packages/backend/dist" -name '*.map' -type f -delete

log "collecting the image recipes' build context"
context="$out.tmp/context"
mkdir -p "$context/packages/backend/dist" "$context/packages/app"
(cd "$work/src" && cp -r package.json yarn.lock .yarnrc.yml .yarn .dockerignore \
  app-config.yaml app-config.production.yaml examples "$context/")
rm -rf "$context/.yarn/cache" "$context/.yarn/install-state.gz" "$context/.yarn/unplugged"
cp "$work/src"/packages/backend/dist/skeleton.tar.gz "$work/src"/packages/backend/dist/bundle.tar.gz \
  "$context/packages/backend/dist/"
cp -r "$work/src/packages/app/dist" "$context/packages/app/dist"

log "collecting the frontend"
mkdir -p "$out.tmp/frontend"
cp -r "$work/src/packages/app/dist" "$out.tmp/frontend/dist"
# Source maps are four fifths of the build and no browser needs them; the
# template for a server that renders index.html itself is not needed either.
find "$out.tmp/frontend/dist" \( -name '*.map' -o -name index.html.tmpl \) -type f -delete

python3 - "$out.tmp" "$node_version" "$((SECONDS - start))" <<'EOF'
import json, os, re, sys
from pathlib import Path

out, node, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())

lock = (out / "backend" / "yarn.lock").read_text()
versions = {}
for m in re.finditer(r'^"(@backstage/[^@"]+)@[^\n]*\n  version: ([^\n]+)', lock, re.M):
    versions[m.group(1)] = m.group(2)
info = {
    "node": node,
    "build_seconds": seconds,
    "backend_bytes": size(out / "backend"),
    "backend_node_modules_bytes": size(out / "backend" / "node_modules"),
    "frontend_dist_bytes": size(out / "frontend" / "dist"),
    "backend_command": ["node", "packages/backend", "--config", "app-config.yaml",
                        "--config", "app-config.production.yaml"],
    "backstage_packages": dict(sorted(versions.items())),
}
(out / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
EOF

touch "$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
# Keep the three newest builds.
find "$root" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' -printf '%T@ %p\n' |
  sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
log "built in $((SECONDS - start))s"
echo "$out"
