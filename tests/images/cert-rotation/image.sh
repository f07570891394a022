# shellcheck shell=bash
# Runner of the certificate rotation CronJob: Debian's Python 3 with
# ansible-core, the kubernetes client and cryptography (pinned by the
# repository's constraints.txt), kubernetes.core and community.crypto, and this
# collection. Same package set as images/cert-rotation/Dockerfile.
IMAGE_REPO=backstage-k8s/cert-rotation
IMAGE_TITLE="backstage.k8s certificate rotation"
IMAGE_DESCRIPTION="Runs ansible-playbook backstage.k8s.rotate in the cluster"
BASE_VARIANT=essential
BASE_PACKAGES=(python3)
IMAGE_USER=1000:1000
# Ansible's local connection runs modules through /bin/sh (dash); bash is removed.
IMAGE_ENTRYPOINT=(ansible-playbook)
IMAGE_CMD=(backstage.k8s.rotate)
IMAGE_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8
    HOME=/home/ansible
    PYTHONDONTWRITEBYTECODE=1
    PYTHONUNBUFFERED=1
    ANSIBLE_COLLECTIONS_PATH=/usr/share/ansible/collections
    ANSIBLE_HOME=/tmp/ansible
    ANSIBLE_LOCAL_TEMP=/tmp/ansible/tmp
    ANSIBLE_REMOTE_TEMP=/tmp/ansible/tmp
    ANSIBLE_INVENTORY_UNPARSED_WARNING=False
    ANSIBLE_LOCALHOST_WARNING=False
)
IMAGE_WORKDIR=/home/ansible

PRODUCT_DIR=$REPO/images/cert-rotation
COLLECTION_DIR=/usr/share/ansible/collections/ansible_collections

# The collection's own files (what galaxy.yml's build would ship to run).
collection_paths() {
    local p
    for p in galaxy.yml meta plugins roles playbooks README.md LICENSE; do
        [ -e "$REPO/$p" ] && echo "$p"
    done
}

# Python 3.11 on glibc 2.36 x86_64: the wheels Debian bookworm's python3 can
# load, whatever Python the host runs (pip does not widen --platform itself).
PIP_TARGET_ARGS=(--only-binary=:all: --implementation cp --python-version 3.11
    --abi cp311 --abi abi3 --abi none --platform any --platform manylinux2014_x86_64)
for _glibc_minor in $(seq 17 36); do
    PIP_TARGET_ARGS+=(--platform "manylinux_2_${_glibc_minor}_x86_64")
done
unset _glibc_minor

image_prepare() {
    [ -f "$REPO/constraints.txt" ] || die "cert-rotation: $REPO/constraints.txt is missing"
    local ansible_version
    ansible_version=$(sed -n 's/^ansible==//p' "$REPO/constraints.txt")
    [ -n "$ansible_version" ] || die "cert-rotation: constraints.txt pins no ansible== version"
    IMAGE_TAG_PREFIX=$(sed -n 's/^version: *//p' "$REPO/galaxy.yml" | tr -d '"'"'"' ')
    [ -n "$IMAGE_TAG_PREFIX" ] || die "cert-rotation: no version in galaxy.yml"
    local wkey
    wkey=$( { cat "$PRODUCT_DIR/requirements.txt" "$REPO/constraints.txt"; echo "${PIP_TARGET_ARGS[*]}"; } | sha | cut -c1-16)
    WHEELS=$IMAGES_CACHE/wheels/cert-rotation-$wkey
    if [ ! -f "$WHEELS/.complete" ]; then
        log "cert-rotation: downloading wheels (ansible $ansible_version and the runner's requirements)"
        rm -rf "$WHEELS"
        mkdir -p "$WHEELS/runner" "$WHEELS/ansible"
        python3 -m pip download --quiet --no-cache-dir "${PIP_TARGET_ARGS[@]}" \
            -d "$WHEELS/runner" -r "$PRODUCT_DIR/requirements.txt" -c "$REPO/constraints.txt" >&2
        python3 -m pip download --quiet --no-cache-dir --no-deps "${PIP_TARGET_ARGS[@]}" \
            -d "$WHEELS/ansible" "ansible==$ansible_version" >&2
        touch "$WHEELS/.complete"
    fi
}

image_inputs() {
    echo "wheels $(cd "$WHEELS" && ls -1 runner ansible | sha)"
    echo "product $(hash_tree "$PRODUCT_DIR")"
    local p
    for p in $(collection_paths); do
        if [ -d "$REPO/$p" ]; then
            echo "collection $p $(hash_tree "$REPO/$p")"
        else
            echo "collection $p $(sha <"$REPO/$p")"
        fi
    done
}

image_assemble() {
    local rootfs=$1 site=/usr/local/lib/python3.11/dist-packages
    mkdir -p "$rootfs$site"
    python3 -m pip install --quiet --no-deps --no-index --no-compile \
        --target "$rootfs$site" "$WHEELS"/runner/*.whl >&2
    # As the Dockerfile: the packages' console scripts (ansible-playbook, ...)
    # in /usr/local/bin, for the image's own python3; no test harness.
    sed -i '1s|^#!.*|#!/usr/bin/python3|' "$rootfs$site"/bin/*
    mv "$rootfs$site"/bin/* "$rootfs/usr/local/bin/"
    rm -rf "$rootfs$site/bin" "$rootfs$site/ansible_test"
    python3 "$PRODUCT_DIR/extract-collections.py" "$WHEELS"/ansible/ansible-*.whl \
        "$rootfs/usr/share/ansible/collections" "$PRODUCT_DIR/collections.txt"
    mkdir -p "$rootfs$COLLECTION_DIR/backstage/k8s"
    (cd "$REPO" && collection_paths | tar -cf - --exclude=__pycache__ --exclude='*.pyc' -T -) |
        tar -C "$rootfs$COLLECTION_DIR/backstage/k8s" -xf -
    chown -R 0:0 "$rootfs$site" "$rootfs/usr/share/ansible"
    chmod -R a+rX,go-w "$rootfs$site" "$rootfs/usr/share/ansible"
    # Byte-compile with the image's own interpreter: the root filesystem is
    # read-only in the cluster, so Python could not cache them at run time.
    chroot "$rootfs" python3 -m compileall -q "$site" /usr/share/ansible/collections >/dev/null
    # The runner's user (fixed uid/gid 1000) and its home.
    echo 'ansible:x:1000:' >>"$rootfs/etc/group"
    echo 'ansible:!::' >>"$rootfs/etc/gshadow"
    echo 'ansible:x:1000:1000:certificate rotation:/home/ansible:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
    echo 'ansible:*:19000:0:99999:7:::' >>"$rootfs/etc/shadow"
    mkdir -p "$rootfs/home/ansible"
    chown 1000:1000 "$rootfs/home/ansible"
    chmod 0755 "$rootfs/home/ansible"
    chmod 1777 "$rootfs/tmp"
}
