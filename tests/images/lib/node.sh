# shellcheck shell=bash
# Node.js for the backend's base images: the version on this host's PATH (the one that builds
# the app), from the npm registry's node-linux-<arch> package (`npm pack` checks the registry's
# integrity hash). Sets NODE_VERSION and NODE_TGZ.
fetch_node() {
    local arch
    NODE_VERSION=$(node --version | sed 's/^v//')
    case $(dpkg --print-architecture) in
        amd64) arch=x64 ;;
        arm64) arch=arm64 ;;
        ppc64el) arch=ppc64 ;;
        s390x) arch=s390x ;;
        *) die "no node-linux package for $(dpkg --print-architecture)" ;;
    esac
    NODE_TGZ=$IMAGES_CACHE/node/node-linux-$arch-$NODE_VERSION.tgz
    [ -f "$NODE_TGZ" ] && return
    log "fetching node-linux-$arch@$NODE_VERSION from the npm registry"
    mkdir -p "$IMAGES_CACHE/node"
    local tmp
    tmp=$(mktemp -d "$IMAGES_CACHE/node/.pack.XXXXXX")
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null 2>&1) ||
        { rm -rf "$tmp"; die "npm pack node-linux-$arch@$NODE_VERSION failed"; }
    mv "$tmp/node-linux-$arch-$NODE_VERSION.tgz" "$NODE_TGZ"
    rm -rf "$tmp"
}

# Put node (and its licence) into ROOTFS/usr/local.
install_node() {
    local rootfs=$1
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/share/doc/node"
    tar -xzf "$NODE_TGZ" -C "$rootfs/usr/local/bin" --strip-components=2 package/bin/node
    tar -xzf "$NODE_TGZ" -O package/LICENSE >"$rootfs/usr/local/share/doc/node/LICENSE"
    chown 0:0 "$rootfs/usr/local/bin/node"
    chmod 0755 "$rootfs/usr/local/bin/node"
}
