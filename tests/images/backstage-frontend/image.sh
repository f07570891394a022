# shellcheck shell=bash
# nginx from Debian serving the Backstage frontend's static files as a
# non-root user on port 8080, with runtime app-config injected at start.
IMAGE_REPO=backstage-k8s/backstage-frontend
IMAGE_TAG_PREFIX=nginx1.22
IMAGE_TITLE="Backstage frontend (nginx)"
IMAGE_DESCRIPTION="Static Backstage frontend served by Debian's nginx, runtime app-config injected at start"
# Extracted, not installed: no maintainer scripts, no dpkg, no bash, no
# perl; only nginx and what the entrypoint uses (dash, coreutils, sed, grep,
# mawk) with their libraries.
BASE_VARIANT=extract
BASE_PACKAGES=(nginx dash coreutils sed grep mawk base-files netbase)
IMAGE_USER=101:101
# A shell is needed here: the entrypoint writes the runtime config into a
# copy of index.html before nginx starts (dash as /bin/sh; no bash).
IMAGE_ENTRYPOINT=(/usr/local/bin/frontend-entrypoint.sh)
# -e stderr: nginx opens its error log before reading nginx.conf; the
# compiled-in /var/log/nginx/error.log is not writable by uid 101.
IMAGE_CMD=(nginx -e stderr -g "daemon off;")
IMAGE_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    FRONTEND_DIST=/srv/backstage-frontend/dist
    FRONTEND_RUNTIME_DIR=/tmp/backstage-frontend
    APP_CONFIG_FILE=/etc/backstage/app-config.json
)
IMAGE_PORTS=(8080/tcp)
IMAGE_WORKDIR=/srv/backstage-frontend
IMAGE_STOPSIGNAL=SIGQUIT

. "$HERE/lib/app.sh"

image_prepare() { find_app_dir; }

# The server's configuration, entrypoint and runtime config injection are product parts.
PRODUCT_DIR=$REPO/images/backstage-frontend

image_inputs() {
    echo "frontend $(hash_tree_tar "$APP_DIR/frontend")"
    echo "product $(hash_tree "$PRODUCT_DIR")"
}

image_assemble() {
    local rootfs=$1
    # What maintainer scripts would have made: /bin/sh, awk, the users.
    ln -sf dash "$rootfs/bin/sh"
    ln -sf mawk "$rootfs/usr/bin/awk"
    cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
nginx:x:101:101:nginx user:/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
    cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nginx:x:101:
nogroup:x:65534:
GROUP
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    # Debian's default site and the directories it owns for www-data.
    rm -rf "$rootfs/etc/nginx/sites-enabled" "$rootfs/etc/nginx/sites-available" \
        "$rootfs/etc/nginx/conf.d" "$rootfs/etc/nginx/modules-enabled" "$rootfs/var/www/html" \
        "$rootfs/var/lib/dpkg"
    mkdir -p "$rootfs/srv/backstage-frontend" "$rootfs/etc/backstage"
    cp -a "$APP_DIR/frontend/dist" "$rootfs/srv/backstage-frontend/dist"
    mkdir -p "$rootfs/usr/local/bin"
    install -m 0644 "$PRODUCT_DIR/nginx.conf" "$rootfs/etc/nginx/nginx.conf"
    install -m 0755 "$PRODUCT_DIR/frontend-entrypoint.sh" "$PRODUCT_DIR/inject-runtime-config.sh" \
        "$rootfs/usr/local/bin/"
    chown -R 0:0 "$rootfs/srv/backstage-frontend"
    chmod -R a+rX,go-w "$rootfs/srv/backstage-frontend"
    chmod 1777 "$rootfs/tmp"
}
