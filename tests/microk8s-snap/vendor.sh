#!/usr/bin/env bash
# Usage: tests/microk8s-snap/vendor.sh MICROK8S_GIT_DIR MICROK8S_COMMIT ADDONS_GIT_DIR ADDONS_COMMIT RELEASE
#
# Copies, unchanged, the parts of canonical/microk8s and canonical/microk8s-core-addons (both
# Apache-2.0) that the laptop-mode tests run into vendor/RELEASE, and records the commits in
# vendor/RELEASE/COMMITS. The git directories are clones of the two public repositories.
set -euo pipefail

[ $# -eq 5 ] || { sed -n '2p' "$0" >&2; exit 2; }
mk_git=$1 mk_commit=$2 addons_git=$3 addons_commit=$4 release=$5
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vendor/$release

wrappers=()
for name in microk8s microk8s-status microk8s-enable microk8s-disable microk8s-config microk8s-ctr \
            microk8s-kubectl microk8s-start microk8s-stop; do
    wrappers+=("microk8s-resources/wrappers/$name.wrapper")
done

rm -rf "$out" && mkdir -p "$out"
git -C "$mk_git" archive --prefix=microk8s/ "$mk_commit" LICENSE microk8s-resources/actions/common/utils.sh \
    microk8s-resources/default-args scripts/wrappers/status.py scripts/wrappers/enable.py \
    scripts/wrappers/disable.py scripts/wrappers/common scripts/find-resolv-conf.py "${wrappers[@]}" |
    tar -x -C "$out"
git -C "$addons_git" archive --prefix=core-addons/ "$addons_commit" LICENSE addons.yaml addons/common \
    addons/dns addons/hostpath-storage addons/registry addons/ingress |
    tar -x -C "$out"
printf 'canonical/microk8s %s\ncanonical/microk8s-core-addons %s\n' \
    "$(git -C "$mk_git" rev-parse "$mk_commit")" "$(git -C "$addons_git" rev-parse "$addons_commit")" >"$out/COMMITS"
