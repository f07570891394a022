# shellcheck shell=bash
# Locate the built example app (tests/backstage-app/build.sh output): sets APP_DIR, whose
# context/ is the app's repository after its builds, the build context of the image recipes.
# BACKSTAGE_K8S_APP_DIR overrides it with a tree built elsewhere.
find_app_dir() {
    if [ -n "${BACKSTAGE_K8S_APP_DIR:-}" ]; then
        APP_DIR=$BACKSTAGE_K8S_APP_DIR
    else
        log "locating the built example app (tests/backstage-app/build.sh)"
        APP_DIR=$("$REPO/tests/backstage-app/build.sh" | tail -n1)
    fi
    [ -f "$APP_DIR/context/packages/backend/dist/bundle.tar.gz" ] && [ -d "$APP_DIR/context/packages/app/dist" ] ||
        die "not a built Backstage app (no context/ with the backend bundle and packages/app/dist): $APP_DIR"
}
