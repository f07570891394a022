# shellcheck shell=bash
# The static server of the example app's frontend (examples/backstage-app) as a user builds it:
# the product recipe images/backstage-frontend/Containerfile with podman, FROM the offline base
# backstage-frontend-base given as a build argument.
IMAGE_REPO=backstage-k8s/backstage-frontend
IMAGE_TITLE="Backstage frontend (nginx)"
IMAGE_DESCRIPTION="Frontend of examples/backstage-app, images/backstage-frontend/Containerfile"
# Set by the recipe; named here for build's check.
IMAGE_USER=101:101
RECIPE_DIR=$REPO/images/backstage-frontend

. "$HERE/lib/app.sh"
. "$HERE/lib/podman.sh"

image_prepare() {
    find_app_dir
    podman_base backstage-frontend-base
    IMAGE_TAG_PREFIX=${BASE_REF##*:}
    IMAGE_TAG_PREFIX=${IMAGE_TAG_PREFIX%-*}
}

image_inputs() {
    echo "base ${BASE_ARCHIVE##*/}"
    echo "recipe $(hash_tree "$RECIPE_DIR")"
    echo "dist $(hash_tree_tar "$APP_DIR/context/packages/app/dist")"
    echo "podman $(podman --version)"
}

image_build() {
    local work=$1 tag=$2 ref=$3 local_ref=localhost/$3
    podman_load "$BASE_ARCHIVE" "$BASE_REF"
    log "backstage-frontend: podman build $local_ref FROM $BASE_REF"
    podman_cmd build --pull=never --network none \
        --build-arg "NGINX_IMAGE=$BASE_REF" --build-context "recipe=$RECIPE_DIR" \
        --label "org.opencontainers.image.title=$IMAGE_TITLE" \
        --label "org.opencontainers.image.version=$tag" \
        --label "org.opencontainers.image.base.name=${BASE_REF#localhost/}" \
        --label "org.opencontainers.image.ref.name=$ref" \
        -f "$RECIPE_DIR/Containerfile" -t "$local_ref" "$APP_DIR/context" >&2 ||
        die "backstage-frontend: podman build failed"
    podman_export "$local_ref" "$work" "$tag"
}
