#!/bin/sh
# Inject runtime app-config into a built Backstage frontend served as static
# files (nginx and the like), without rebuilding it.
#
#   inject-runtime-config.sh DIST_DIR CONFIG_JSON
#
# CONFIG_JSON is a JSON object holding the frontend-visible configuration of
# this deployment, for example
#   {"app": {"baseUrl": "https://backstage.example.com"},
#    "backend": {"baseUrl": "https://backstage.example.com"}}
#
# The frontend's config loader (@backstage/core-app-api defaultConfigLoader)
# reads every <script type="backstage.io/config"> element of index.html: a JSON
# array of {context, data} entries that take precedence over the configuration
# baked in at build time. This script (re)writes one such element, marked with
# id="backstage-runtime-config", so running it again at every container start
# replaces the previous value instead of adding another.
#
# Only POSIX sh, sed and awk are needed, so it runs in a stock nginx image's
# entrypoint. The JSON must not contain the text "</script" (HTML would end the
# element there).
set -eu

dist=${1:?usage: inject-runtime-config.sh DIST_DIR CONFIG_JSON}
config=${2:?usage: inject-runtime-config.sh DIST_DIR CONFIG_JSON}
index="$dist/index.html"

[ -f "$index" ] || { echo "no $index" >&2; exit 1; }
[ -s "$config" ] || { echo "empty or missing $config" >&2; exit 1; }
if grep -qi '</script' "$config"; then
  echo "$config contains </script" >&2
  exit 1
fi

tmp="$index.tmp.$$"
# Drop a previously injected element (this script writes it on lines of its
# own), then add the new one right before </head>. The built index.html is
# minified onto one line, so </head> is split off the line it is on.
sed '/^<script type="backstage.io\/config" id="backstage-runtime-config">$/,/^<\/script>$/d' "$index" |
  awk -v config="$config" '
    !done && (i = index($0, "</head>")) > 0 {
      if (i > 1) print substr($0, 1, i - 1)
      print "<script type=\"backstage.io/config\" id=\"backstage-runtime-config\">"
      printf "[{\"context\":\"runtime-config\",\"data\":"
      while ((getline line < config) > 0) print line
      print "}]"
      print "</script>"
      print substr($0, i)
      done = 1
      next
    }
    { print }
    END { if (!done) { print "no </head> in index.html" > "/dev/stderr"; exit 1 } }
  ' >"$tmp"
chmod --reference="$index" "$tmp" 2>/dev/null || chmod 0644 "$tmp"
mv "$tmp" "$index"
