# shellcheck shell=bash
# The build stage's base of images/backstage-backend/Containerfile (its NODE_BUILD_IMAGE): what
# the official node images give that stage, from Debian packages and the npm registry: a shell,
# tar and gzip (bookworm essential), Node.js (the same package as backstage-backend-base) and
# Yarn's launcher (npm's yarn 1.22, which runs the release an app's .yarnrc.yml names in
# yarnPath). Runs as root, as the recipe's build stage does.
IMAGE_REPO=backstage-k8s/backstage-backend-build-base
IMAGE_TITLE="Node.js build stage"
IMAGE_DESCRIPTION="Debian bookworm with Node.js and Yarn's launcher, for building the backend image"
BASE_VARIANT=essential
BASE_PACKAGES=(libstdc++6 ca-certificates)
IMAGE_USER=0:0
IMAGE_CMD=(/bin/sh)
IMAGE_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
)
YARN_LAUNCHER_VERSION=1.22.22

. "$HERE/lib/node.sh"

image_prepare() {
    fetch_node
    IMAGE_TAG_PREFIX=node$NODE_VERSION
    YARN_TGZ=$IMAGES_CACHE/node/yarn-$YARN_LAUNCHER_VERSION.tgz
    if [ ! -f "$YARN_TGZ" ]; then
        local tmp
        tmp=$(mktemp -d "$IMAGES_CACHE/node/.pack.XXXXXX")
        (cd "$tmp" && npm pack --silent "yarn@$YARN_LAUNCHER_VERSION" >/dev/null 2>&1) ||
            { rm -rf "$tmp"; die "npm pack yarn@$YARN_LAUNCHER_VERSION failed"; }
        mv "$tmp/yarn-$YARN_LAUNCHER_VERSION.tgz" "$YARN_TGZ"
        rm -rf "$tmp"
    fi
}

image_inputs() {
    echo "node $(sha <"$NODE_TGZ")"
    echo "yarn $(sha <"$YARN_TGZ")"
}

image_assemble() {
    local rootfs=$1
    install_node "$rootfs"
    mkdir -p "$rootfs/opt/yarn"
    tar -xzf "$YARN_TGZ" -C "$rootfs/opt/yarn" --strip-components=1 --no-same-owner
    ln -sf /opt/yarn/bin/yarn "$rootfs/usr/local/bin/yarn"
}
