#!/usr/bin/env bash
# Runs ansible-test sanity on a copy of the collection laid out as
# ansible_collections/backstage/k8s, which is where ansible-test insists on running.
#
# ansible-test builds one virtualenv per sanity test and bootstraps pip in it from a script it
# downloads; it also drops PIP_* variables from the environment. So it runs with a HOME of its own
# (kept in the cache, so its virtualenvs are reused) holding: a pip.conf carrying this machine's
# PIP_* settings (index, certificates), and a bootstrap script that uses Python's own ensurepip.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${BACKSTAGE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backstage-k8s}
sanity_home="$cache/ansible-test-home"
mkdir -p "$sanity_home/.config/pip" "$sanity_home/.ansible/test/cache"
# Its virtualenvs are shared by every checkout on this machine: two runs building the same one at
# once leave it without a working pip.
exec 9>"$sanity_home/.lock"
flock -w 1800 9 || { echo "another sanity run has held $sanity_home/.lock for 30 minutes" >&2; exit 1; }

{
  echo "[global]"
  env | sed -n 's/^PIP_\([A-Z_]*\)=\(.*\)$/\1 \2/p' | while read -r name value; do
    echo "$(tr 'A-Z_' 'a-z-' <<<"$name") = $value"
  done
} > "$sanity_home/.config/pip/pip.conf"

pip_version=$(python3 -c 'import ansible_test, pathlib, re; p = pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py"; print(re.search(r"pip=.([0-9.]+).", p.read_text()).group(1))')
cat > "$sanity_home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<'PY'
import subprocess
import sys

# In a child process: ensurepip disables pip's configuration in the process that runs it.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
PY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/backstage/k8s"
mkdir -p "$dest"
# Tracked and new (not ignored) files; the example Backstage app is JavaScript that sanity does not
# check, and tests/microk8s-snap/vendor is microk8s's own code, kept unchanged.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard -- . ':!examples/backstage-app' \
    ':!tests/microk8s-snap/vendor' |
  xargs -0 -r cp --parents -t "$dest")
# The collections the docs draw fragments from (kubernetes.core's authentication options), where
# ansible-test looks for them: beside the collection under test.
kubernetes_core=$(python3 -c 'import ansible_collections.kubernetes.core as c; print(list(c.__path__)[0])')
mkdir -p "$work/ansible_collections/kubernetes"
cp -r "$kubernetes_core" "$work/ansible_collections/kubernetes/core"
cd "$dest"
git init -q && git add -A
python_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
HOME="$sanity_home" ansible-test sanity --color no --python "$python_version" --requirements "$@"
