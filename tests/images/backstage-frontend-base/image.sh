# shellcheck shell=bash
# The base of images/backstage-frontend/Containerfile (its NGINX_IMAGE): Debian's nginx with what
# the recipe and its entrypoint use (dash, coreutils, sed, grep, mawk, find), extracted, not
# installed: no maintainer scripts, no dpkg, no bash, no perl. uid 101 is nginx, as in the
# official nginx images.
IMAGE_REPO=backstage-k8s/backstage-frontend-base
IMAGE_TAG_PREFIX=nginx1.22
IMAGE_TITLE="nginx"
IMAGE_DESCRIPTION="Debian's nginx with a POSIX shell, sed, awk and find"
BASE_VARIANT=extract
BASE_PACKAGES=(nginx dash coreutils sed grep mawk findutils base-files netbase)
IMAGE_USER=101:101
IMAGE_CMD=(nginx -e stderr -g "daemon off;")
IMAGE_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
)
IMAGE_PORTS=(8080/tcp)
IMAGE_STOPSIGNAL=SIGQUIT

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
    chmod 1777 "$rootfs/tmp"
}
