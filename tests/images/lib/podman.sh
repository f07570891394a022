# shellcheck shell=bash
# podman for the images built from a recipe (the product's Containerfiles, ansible-builder's),
# FROM bases that tests/images/build makes as OCI archives: nothing is pulled (--pull=never).
#
# A store of its own, apart from the host's default one that other tests use: in the cache,
# holding the loaded bases between builds (and the recipes' cache mounts); run state on tmpfs.
# runc, as Debian's crun 1.8 refuses a hybrid cgroup v1/v2 host; cgroupfs (no systemd needed),
# events to a file (no journald).
podman_cmd() {
    podman --root "$IMAGES_CACHE/podman/storage" \
        --runroot "${XDG_RUNTIME_DIR:-/run}/backstage-k8s-podman" \
        --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}

# Build (or reuse) the base image NAME; sets BASE_ARCHIVE and BASE_REF (localhost/<reference>,
# the name the recipe's FROM gets as a build argument).
podman_base() {
    local name=$1 line
    command -v podman >/dev/null || die "podman is missing (tests/images/setup-host.sh installs it)"
    line=$("$HERE/build" "$name" | tail -n 1)
    BASE_ARCHIVE=${line% *}
    BASE_REF=localhost/${line#* }
    [ -f "$BASE_ARCHIVE" ] || die "no $name archive ($line)"
}

# Load ARCHIVE into the store as REF, unless it is there; drop the store's other tags of REF's
# repository (older bases).
podman_load() {
    local archive=$1 ref=$2 loaded old
    if ! podman_cmd image exists "$ref"; then
        loaded=$(podman_cmd load -q -i "$archive" | sed -n 's/^Loaded image[^:]*: *//p' | tail -n 1)
        [ -n "$loaded" ] || die "podman load $archive named no image"
        podman_cmd tag "$loaded" "$ref"
    fi
    podman_cmd images --format '{{.Repository}}:{{.Tag}}' | grep -F "${ref%:*}:" |
        { grep -vxF "$ref" || true; } | while IFS= read -r old; do
            podman_cmd rmi "$old" >/dev/null
        done
}

# Volume arguments that give a build the CA certificates this host trusts (registries may be
# reached through a TLS-inspecting proxy); nothing is written into a layer.
podman_ca_volume() {
    local ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
    PODMAN_CA_VOLUME=()
    [ -f "$ca" ] && PODMAN_CA_VOLUME=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
    return 0
}

# Write LOCAL_REF to WORK/oci holding TAG (gzip layers), set IMAGE_ROOTFS_BYTES, then remove it
# from the store: the archive is the cache of record (an unchanged rebuild takes seconds).
podman_export() {
    local local_ref=$1 work=$2 tag=$3
    podman_cmd push --quiet --compression-format gzip "$local_ref" "oci:$work/oci:$tag" >&2 ||
        die "podman push $local_ref to an OCI layout failed"
    IMAGE_ROOTFS_BYTES=$(podman_cmd image inspect --format '{{.Size}}' "$local_ref")
    # A build killed earlier leaves its containers on the layers it had made, which a later build
    # reuses: the image then stays in the store until they are gone (an exported archive is
    # complete either way).
    podman_cmd rmi "$local_ref" >/dev/null 2>&1 ||
        log "$local_ref stays in the store: a container of an earlier, interrupted build uses its layers"
    podman_cmd image prune -f >/dev/null
}
