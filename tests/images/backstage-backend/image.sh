# shellcheck shell=bash
# The Backstage backend of the example app (examples/backstage-app) as a user builds it: the
# product recipe images/backstage-backend/Containerfile with podman, FROM the offline bases
# backstage-backend-build-base and backstage-backend-base given as build arguments. Yarn's
# production install inside the build reaches the npm registry over the host's network.
IMAGE_REPO=backstage-k8s/backstage-backend
IMAGE_TITLE="Backstage backend"
IMAGE_DESCRIPTION="Backstage backend of examples/backstage-app, images/backstage-backend/Containerfile"
# Set by the recipe; named here for build's check.
IMAGE_USER=1000:1000
RECIPE_DIR=$REPO/images/backstage-backend

. "$HERE/lib/app.sh"
. "$HERE/lib/podman.sh"

image_prepare() {
    find_app_dir
    podman_base backstage-backend-build-base
    BUILD_BASE_ARCHIVE=$BASE_ARCHIVE BUILD_BASE_REF=$BASE_REF
    podman_base backstage-backend-base
    IMAGE_TAG_PREFIX=${BASE_REF##*:}
    IMAGE_TAG_PREFIX=${IMAGE_TAG_PREFIX%-*}
}

image_inputs() {
    echo "bases ${BUILD_BASE_ARCHIVE##*/} ${BASE_ARCHIVE##*/}"
    echo "recipe $(hash_tree "$RECIPE_DIR")"
    echo "context $(hash_tree_tar "$APP_DIR/context")"
    echo "podman $(podman --version)"
}

image_build() {
    local work=$1 tag=$2 ref=$3 local_ref=localhost/$3
    podman_load "$BUILD_BASE_ARCHIVE" "$BUILD_BASE_REF"
    podman_load "$BASE_ARCHIVE" "$BASE_REF"
    podman_ca_volume
    log "backstage-backend: podman build $local_ref FROM $BUILD_BASE_REF, $BASE_REF"
    podman_cmd build --pull=never --network host "${PODMAN_CA_VOLUME[@]}" \
        --build-arg "NODE_BUILD_IMAGE=$BUILD_BASE_REF" --build-arg "NODE_IMAGE=$BASE_REF" \
        --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
        --label "org.opencontainers.image.title=$IMAGE_TITLE" \
        --label "org.opencontainers.image.version=$tag" \
        --label "org.opencontainers.image.base.name=${BASE_REF#localhost/}" \
        --label "org.opencontainers.image.ref.name=$ref" \
        -f "$RECIPE_DIR/Containerfile" -t "$local_ref" "$APP_DIR/context" >&2 ||
        die "backstage-backend: podman build failed"
    podman_export "$local_ref" "$work" "$tag"
}
