# shellcheck shell=bash
# PostgreSQL 15 from Debian under the contract of the official postgres image
# (see ../README.md): the postgres role runs either image unchanged.
IMAGE_REPO=backstage-k8s/postgres
IMAGE_TAG_PREFIX=15
IMAGE_TITLE="PostgreSQL 15 (Debian)"
IMAGE_DESCRIPTION="PostgreSQL 15 from Debian bookworm with the official image's entrypoint contract"
BASE_VARIANT=essential
# bash: the entrypoint is a bash script (as upstream's); libnss-wrapper lets
# initdb run under a uid missing from /etc/passwd (OpenShift-style random uids).
BASE_PACKAGES=(postgresql-15 libnss-wrapper)
IMAGE_USER=999:999
IMAGE_ENTRYPOINT=(docker-entrypoint.sh)
IMAGE_CMD=(postgres)
IMAGE_ENV=(
    PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    PG_MAJOR=15
    PGDATA=/var/lib/postgresql/data
    LANG=C.UTF-8
)
IMAGE_PORTS=(5432/tcp)
IMAGE_VOLUMES=(/var/lib/postgresql/data)
IMAGE_STOPSIGNAL=SIGINT

image_assemble() {
    local rootfs=$1
    # Unix socket directory, writable by the server (uid 999) whatever its
    # group. Made here: mmdebstrap empties /run after its hooks.
    mkdir -p "$rootfs/run/postgresql"
    chown 999:999 "$rootfs/run/postgresql"
    chmod 3777 "$rootfs/run/postgresql"
}
