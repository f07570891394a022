# shellcheck shell=bash
# Locate the built Backstage app (tests/images/backstage-app/build.sh output):
# sets APP_DIR. BACKSTAGE_K8S_APP_DIR overrides it with a tree built elsewhere.
find_app_dir() {
    if [ -n "${BACKSTAGE_K8S_APP_DIR:-}" ]; then
        APP_DIR=$BACKSTAGE_K8S_APP_DIR
    else
        log "locating the built Backstage app (tests/images/backstage-app/build.sh)"
        APP_DIR=$("$HERE/backstage-app/build.sh" | tail -n1)
    fi
    [ -d "$APP_DIR/frontend/dist" ] && [ -d "$APP_DIR/backend" ] ||
        die "not a built Backstage app (no backend/ and frontend/dist/): $APP_DIR"
}
