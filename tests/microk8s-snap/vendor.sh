#!/usr/bin/env bash
# Usage: tests/microk8s-snap/vendor.sh MICROK8S_GIT_DIR MICROK8S_COMMIT ADDONS_GIT_DIR ADDONS_COMMIT RELEASE \
#            [TRAEFIK_CHART_GIT_DIR GATEWAY_API_GIT_DIR]
#
# Copies, unchanged, the parts of canonical/microk8s and canonical/microk8s-core-addons (both
# Apache-2.0) that the laptop-mode tests run into vendor/RELEASE, and records the commits in
# vendor/RELEASE/COMMITS. The git directories are clones of the public repositories.
# From 1.35 on the ingress addon installs Traefik's Helm chart and the Gateway API CRDs, fetched
# from the network: give clones of traefik/traefik-helm-chart and kubernetes-sigs/gateway-api
# (both Apache-2.0) and the chart and the CRDs at the versions the vendored enable script names
# are copied too, unchanged.
set -euo pipefail

[ $# -eq 5 ] || [ $# -eq 7 ] || { sed -n '2,3p' "$0" >&2; exit 2; }
mk_git=$1 mk_commit=$2 addons_git=$3 addons_commit=$4 release=$5
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vendor/$release

wrappers=()
for name in microk8s microk8s-status microk8s-enable microk8s-disable microk8s-config microk8s-ctr \
            microk8s-kubectl microk8s-start microk8s-stop microk8s-helm3; do
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
    "$(git -C "$mk_git" rev-parse "$mk_commit^{commit}")" "$(git -C "$addons_git" rev-parse "$addons_commit^{commit}")" >"$out/COMMITS"

# The ingress addon's own defaults: CHART_VERSION="37.4.0", GW_VERSION="v1.4.0".
enable=$out/core-addons/addons/ingress/enable
chart_version=$(sed -n 's/^CHART_VERSION="\([^"]*\)".*/\1/p' "$enable")
gw_version=$(sed -n 's/^GW_VERSION="\([^"]*\)".*/\1/p' "$enable")
if [ -z "$chart_version" ]; then
    [ $# -eq 5 ] || { echo "vendor.sh: the $release ingress addon names no Helm chart" >&2; exit 2; }
    exit 0
fi
[ $# -eq 7 ] || { echo "vendor.sh: the $release ingress addon installs Traefik's chart $chart_version and the Gateway API CRDs $gw_version: give the chart and gateway-api clones" >&2; exit 2; }
chart_git=$6 gateway_git=$7
# The chart as `helm package` reads it (its tests and docs left out) and the Gateway API
# standard channel's CRDs with the licence header that its release asset standard-install.yaml
# puts before them (hack/build-install-yaml.sh; snap-layout concatenates them the same way).
git -C "$chart_git" archive --prefix=traefik-helm-chart/ "v$chart_version" LICENSE traefik/.helmignore \
    traefik/Chart.yaml traefik/values.yaml traefik/values.schema.json traefik/crds traefik/templates |
    tar -x -C "$out"
git -C "$gateway_git" archive --prefix=gateway-api/ "$gw_version" LICENSE config/crd/standard \
    hack/boilerplate/boilerplate.sh.txt |
    tar -x -C "$out"
printf 'traefik/traefik-helm-chart %s v%s\nkubernetes-sigs/gateway-api %s %s\n' \
    "$(git -C "$chart_git" rev-parse "v$chart_version^{commit}")" "$chart_version" \
    "$(git -C "$gateway_git" rev-parse "$gw_version^{commit}")" "$gw_version" >>"$out/COMMITS"
