# shellcheck shell=bash
# The execution environment (EE): images/execution-environment/execution-environment.yml
# as a user builds it, with ansible-builder (pinned, in a virtualenv in the cache) and
# podman, FROM the ee-base archive of this script loaded into podman. Nothing is
# pulled from a registry (--pull=never); pip inside the build reaches PyPI over the
# host's network, trusting the CA certificates the host trusts. The collection is the
# tarball `ansible-galaxy collection build` makes of this checkout. Also the image the
# rotation CronJob runs (tests/testcluster/site-vars.yml).
IMAGE_REPO=backstage-k8s/ee
IMAGE_TITLE="backstage.k8s execution environment"
IMAGE_DESCRIPTION="ansible-core, ansible-runner, backstage.k8s, kubernetes.core and community.crypto"
# Set by the definition (ansible-builder's default user); named here for build's check.
IMAGE_USER=1000

PRODUCT_DIR=$REPO/images/execution-environment
EE_DEFINITION=$PRODUCT_DIR/execution-environment.yml
# The ee-base image's Python (the definition's default is the python image's /usr/local/bin/python3).
EE_PYCMD=/usr/bin/python3

. "$HERE/lib/podman.sh"

# The content of a collection tarball: names, modes and bytes, not the times ansible-galaxy stamps.
tarball_content_hash() {
    python3 - "$1" <<'PY'
import hashlib, sys, tarfile
digest = hashlib.sha256()
with tarfile.open(sys.argv[1]) as tar:
    for member in sorted(tar.getmembers(), key=lambda m: m.name):
        digest.update(f"{member.name}\0{member.type!r}\0{member.mode:o}\0".encode())
        if member.isfile():
            digest.update(hashlib.sha256(tar.extractfile(member).read()).digest())
print(digest.hexdigest())
PY
}

image_prepare() {
    IMAGE_TAG_PREFIX=$(sed -n 's/^version: *//p' "$REPO/galaxy.yml" | tr -d '"'"'"' ')
    [ -n "$IMAGE_TAG_PREFIX" ] || die "ee: no version in galaxy.yml"

    # ansible-builder and ansible-galaxy, pinned.
    local tkey
    tkey=$( { cat "$IMAGE_DIR/requirements.txt" "$REPO/constraints.txt"; python3 --version; } | sha | cut -c1-16)
    EE_TOOLS=$IMAGES_CACHE/tools/ee-$tkey
    if [ ! -f "$EE_TOOLS/.complete" ]; then
        log "ee: installing ansible-builder into $EE_TOOLS"
        rm -rf "$EE_TOOLS"
        python3 -m venv "$EE_TOOLS"
        "$EE_TOOLS/bin/python" -m pip install --quiet -r "$IMAGE_DIR/requirements.txt" \
            -c "$REPO/constraints.txt" >&2 || die "ee: installing ansible-builder failed"
        touch "$EE_TOOLS/.complete"
    fi

    # The base, built (or reused) like every other image.
    podman_base ee-base
    EE_BASE_ARCHIVE=$BASE_ARCHIVE
    EE_BASE_REF=$BASE_REF

    # The collection as users install it: the tarball of `make build`.
    EE_COLLECTION_DIR=$(mktemp -d "$IMAGES_CACHE/.ee-collection.XXXXXX")
    CLEANUP+=("$EE_COLLECTION_DIR")
    "$EE_TOOLS/bin/ansible-galaxy" collection build "$REPO" --output-path "$EE_COLLECTION_DIR" >&2 ||
        die "ee: ansible-galaxy collection build failed"
    EE_COLLECTION_TARBALL=$(echo "$EE_COLLECTION_DIR"/backstage-k8s-*.tar.gz)
    EE_COLLECTION_HASH=$(tarball_content_hash "$EE_COLLECTION_TARBALL")
}

image_inputs() {
    echo "base ${EE_BASE_ARCHIVE##*/}"
    echo "definition $(hash_tree "$PRODUCT_DIR")"
    echo "constraints $(sha <"$REPO/constraints.txt")"
    echo "collection $EE_COLLECTION_HASH"
    echo "tools $(sha <"$IMAGE_DIR/requirements.txt")"
    echo "podman $(podman --version)"
}

# Writes the EE as an OCI layout in WORK/oci, tagged TAG; sets IMAGE_ROOTFS_BYTES.
image_build() {
    local work=$1 tag=$2 ref=$3 context=$1/context
    local local_ref=localhost/$ref
    log "ee: ansible-builder create ($EE_DEFINITION)"
    "$EE_TOOLS/bin/ansible-builder" create -f "$EE_DEFINITION" --context "$context" \
        --output-filename Containerfile >&2 || die "ee: ansible-builder create failed"
    # This checkout's tarball, not whatever dist/ holds.
    rm -f "$context"/_build/backstage-k8s/backstage-k8s-*.tar.gz
    cp "$EE_COLLECTION_TARBALL" "$context/_build/backstage-k8s/"

    podman_load "$EE_BASE_ARCHIVE" "$EE_BASE_REF"
    podman_ca_volume
    log "ee: podman build $local_ref FROM $EE_BASE_REF"
    # pip reaches PyPI through the host's network.
    podman_cmd build --pull=never --network host "${PODMAN_CA_VOLUME[@]}" \
        --build-arg "EE_BASE_IMAGE=$EE_BASE_REF" --build-arg "PYCMD=$EE_PYCMD" \
        --label "org.opencontainers.image.version=$tag" \
        --label "org.opencontainers.image.base.name=${EE_BASE_REF#localhost/}" \
        --label "org.opencontainers.image.ref.name=$ref" \
        -f "$context/Containerfile" -t "$local_ref" "$context" >&2 || die "ee: podman build failed"
    podman_export "$local_ref" "$work" "$tag"
}
