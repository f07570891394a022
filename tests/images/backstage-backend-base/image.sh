# shellcheck shell=bash
# The final stage's base of images/backstage-backend/Containerfile (its NODE_IMAGE): Node.js
# from the npm registry's node-linux-<arch> package (the version that builds the app; Debian
# bookworm's nodejs 18 is too old) on Debian's libc6, libstdc++6 and libgcc-s1, extracted. No
# shell, no package manager: the recipe's final stage only copies the app in.
IMAGE_REPO=backstage-k8s/backstage-backend-base
IMAGE_TITLE="Node.js runtime"
IMAGE_DESCRIPTION="Node.js on Debian's C and C++ runtime libraries, non-root, no shell"
BASE_VARIANT=extract
BASE_PACKAGES=(libc6 libstdc++6 libgcc-s1 base-files netbase tzdata)
IMAGE_USER=1000:1000
IMAGE_CMD=(node)
IMAGE_ENV=(
    PATH=/usr/local/bin:/usr/bin:/bin
    HOME=/home/node
)

. "$HERE/lib/node.sh"

image_prepare() {
    fetch_node
    IMAGE_TAG_PREFIX=node$NODE_VERSION
}

image_inputs() {
    echo "node $(sha <"$NODE_TGZ")"
}

image_assemble() {
    local rootfs=$1
    install_node "$rootfs"
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
}
