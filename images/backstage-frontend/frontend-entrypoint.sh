#!/bin/sh
# Write the runtime app-config into a copy of index.html, then run nginx.
#
# The configuration (a JSON object of frontend-visible settings) comes from
# the first of:
#   - the file $APP_CONFIG_FILE (default /etc/backstage/app-config.json), if present
#   - $APP_CONFIG_JSON
#   - $APP_BASE_URL and/or $BACKEND_BASE_URL (builds {"app": {"baseUrl": ...},
#     "backend": {"baseUrl": ...}})
# With none of them the configuration baked in at build time is served.
set -eu

dist=${FRONTEND_DIST:-/srv/backstage-frontend/dist}
run=${FRONTEND_RUNTIME_DIR:-/tmp/backstage-frontend}
mkdir -p "$run" /tmp/nginx
cp "$dist/index.html" "$run/index.html"

# URLs go into JSON as they are: refuse the characters that would need escaping.
for url in "${APP_BASE_URL:-}" "${BACKEND_BASE_URL:-}"; do
    case $url in
        *'"'* | *'\'* | *'<'*)
            echo "frontend-entrypoint: refusing a URL with \", \\ or <: $url" >&2
            exit 1
            ;;
    esac
done

config=""
if [ -n "${APP_CONFIG_FILE:-}" ] && [ -f "$APP_CONFIG_FILE" ]; then
    config=$APP_CONFIG_FILE
elif [ -n "${APP_CONFIG_JSON:-}" ]; then
    config=$run/app-config.json
    printf '%s\n' "$APP_CONFIG_JSON" >"$config"
elif [ -n "${APP_BASE_URL:-}" ] || [ -n "${BACKEND_BASE_URL:-}" ]; then
    config=$run/app-config.json
    sep=""
    {
        printf '{'
        if [ -n "${APP_BASE_URL:-}" ]; then
            printf '"app": {"baseUrl": %s}' "\"$APP_BASE_URL\""
            sep=", "
        fi
        if [ -n "${BACKEND_BASE_URL:-}" ]; then
            printf '%s"backend": {"baseUrl": %s}' "$sep" "\"$BACKEND_BASE_URL\""
        fi
        printf '}\n'
    } >"$config"
fi

if [ -n "$config" ]; then
    inject-runtime-config.sh "$run" "$config"
    echo "frontend-entrypoint: runtime config from $config written to $run/index.html" >&2
fi

exec "$@"
