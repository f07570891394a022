# shellcheck shell=bash
# PostgreSQL 17 from Debian trixie under the same contract as ../postgres (PostgreSQL 15 from
# bookworm): a second major version for the tests of the postgres role's version guard and of
# its 15-to-17 upgrade. Test rig only, like every image here. It shares ../postgres's entrypoint.
IMAGE_REPO=backstage-k8s/postgres
IMAGE_TAG_PREFIX=17
IMAGE_TITLE="PostgreSQL 17 (Debian)"
IMAGE_DESCRIPTION="PostgreSQL 17 from Debian trixie with the official image's entrypoint contract"
DEBIAN_SUITE=trixie
BASE_VARIANT=essential
BASE_PACKAGES=(postgresql-17 libnss-wrapper)
IMAGE_USER=999:999
IMAGE_ENTRYPOINT=(docker-entrypoint.sh)
IMAGE_CMD=(postgres)
IMAGE_ENV=(
    PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    PG_MAJOR=17
    PGDATA=/var/lib/postgresql/data
    LANG=C.UTF-8
)
IMAGE_PORTS=(5432/tcp)
IMAGE_VOLUMES=(/var/lib/postgresql/data)
IMAGE_STOPSIGNAL=SIGINT

# The host's apt sources (bookworm) for trixie: the same mirrors, the suite names changed.
debian_sources() {
    local host=${BACKSTAGE_K8S_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
    [ -f "$host" ] || host=/etc/apt/sources.list
    local out=$IMAGES_CACHE/base/trixie.sources
    mkdir -p "$IMAGES_CACHE/base"
    sed 's/bookworm/trixie/g' "$host" >"$out.tmp" && mv "$out.tmp" "$out"
    echo "$out"
}

image_inputs() {
    echo "entrypoint $(hash_tree "$HERE/postgres/rootfs")"
}

image_assemble() {
    local rootfs=$1
    tar -C "$HERE/postgres/rootfs" --owner=0 --group=0 --numeric-owner -cf - . |
        tar -C "$rootfs" --no-overwrite-dir -xpf -
    mkdir -p "$rootfs/run/postgresql"
    chown 999:999 "$rootfs/run/postgresql"
    chmod 3777 "$rootfs/run/postgresql"
}
