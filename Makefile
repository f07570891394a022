# backstage.k8s: one entry point for deploying and testing.
# `make deploy` installs Backstage; `make test` sets everything up and runs every test tier.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The virtualenv's interpreter (3.11+). Ansible runs measurably faster on a statically linked
# build (a distribution's python3) than on a shared-libpython one (pyenv's default): README, Benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export BACKSTAGE_K8S_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/backstage-k8s
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SITE_PACKAGES = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
COLLECTION_LINK = $(SITE_PACKAGES)/ansible_collections/backstage/k8s
# Ansible finds backstage.k8s through the virtualenv's link to this checkout (and kubernetes.core,
# community.crypto beside it), never through a copy installed in ~/.ansible/collections.
export ANSIBLE_COLLECTIONS_PATH = $(SITE_PACKAGES)

# Test tiers run by `make test`, in two lanes side by side (each lane's tiers in order): the
# tiers on the test cluster's instance 0, which they share, and the tiers that need no cluster or
# bring up an instance of their own (MICROK8S_SNAP_INSTANCE, 1). Each lane runs mostly one Python
# process at a time, so two lanes keep both cores of a small machine busy.
# The cluster comes up early (cluster-test) so that every later tier runs against it.
CLUSTER_LANE = cluster-test argspec-test images-test image-import-test image-build-test molecule-postgres molecule-cluster molecule-split rotation-test package-test
SIDE_LANE = lint sanity docs-lint unit backstage-app-test molecule-default cluster-lifecycle-test
TEST_TIERS = $(SIDE_LANE) $(CLUSTER_LANE)

# Targets run one after the other, even under `make -j` (tiers share the test cluster); only
# `make test` runs its two lanes side by side.
.NOTPARALLEL:

LOCKED := tests/run-locked
# make test's tiers, each a make of its own. Named through this variable, so that `make -n test`
# prints the run instead of starting it (make runs a recipe line that names $(MAKE) even under -n).
TIER_MAKE = $(MAKE) --no-print-directory

.PHONY: help venv venv-runtime link-collection deploy test package-test $(TEST_TIERS) backstage-app-test constraints ee-requirements build docs clean cluster-up cluster-down cluster-test cluster-lifecycle-test molecule-cluster molecule-split molecule-postgres rotation-test molecule-default molecule-laptop image-import-test demo images-test image-build-test fault-test lifecycle-test

help:  ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Runtime (requirements.txt: what `make deploy` needs) and test tooling (requirements-test.txt),
# both pinned by constraints.txt.
$(BIN)/.installed-runtime: requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

# The tests drive image_build too, whose checks want ansible-builder in this virtualenv.
$(BIN)/.installed-test: $(BIN)/.installed-build requirements-test.txt constraints.txt
	$(BIN)/pip install --quiet -r requirements-test.txt -c constraints.txt
	touch $@

link-collection:
	@link="$(COLLECTION_LINK)"; mkdir -p "$$(dirname "$$link")"; \
	  [ "$$(readlink "$$link")" = "$(CURDIR)" ] || ln -sfn "$(CURDIR)" "$$link"

venv-runtime: $(BIN)/.installed-runtime link-collection  ## Create the virtualenv with what a deploy needs and link the collection into it

venv: $(BIN)/.installed-test link-collection  ## Create the virtualenv with the test tooling too and link the collection into it

# ansible-builder, for the certificate rotation runner that site.yml builds when no image is given.
$(BIN)/.installed-build: $(BIN)/.installed-runtime images/execution-environment/requirements-build.txt constraints.txt
	$(BIN)/pip install --quiet -r images/execution-environment/requirements-build.txt -c constraints.txt
	touch $@

deploy: venv-runtime $(BIN)/.installed-build  ## Deploy Backstage (microk8s on this machine unless a kubeconfig is given; builds the example app's images unless images are given)
	$(BIN)/ansible-playbook site.yml $(ANSIBLE_ARGS)

# Tiers share the test cluster (its namespaces, Ingress hosts, ports): one run at a time per
# instance. The run holds the cluster's lock for all its tiers; a tier started alone takes it
# too, and another run finds it held and stops at once, saying so.
# The test cluster's build (the longest part of a cold run, cached once done), then the test
# images' and Helm's (laptop mode's microk8s 1.35), start in the background at once and overlap
# the tiers that do not need them; the tiers that do wait for them (each build holds a lock;
# nothing is built twice). The virtualenv is made first, so that the lanes find it ready. The side
# lane's lines are prefixed with "[side]"; a failed tier stops its lane, and the run fails once
# both lanes are done.
test: venv $(BIN)/.installed-build  ## Set up and run every test tier
	mkdir -p "$(BACKSTAGE_K8S_CACHE)"
	$(LOCKED) bash -c 'set -o pipefail; \
	  { tests/cluster/cluster build && tests/images/build all >/dev/null && tests/build-helm >/dev/null; } \
	  >"$(BACKSTAGE_K8S_CACHE)/prebuild.log" 2>&1 & \
	  lane() { for tier; do start=$$SECONDS; $(TIER_MAKE) $$tier || return; \
	    echo "make test: $$tier passed in $$((SECONDS - start)) s"; done; }; \
	  { lane $(SIDE_LANE) 2>&1 | sed -u "s/^/[side] /"; } & side=$$!; \
	  lane $(CLUSTER_LANE); cluster_lane=$$?; wait $$side; side_lane=$$?; \
	  [ $$cluster_lane -eq 0 ] || echo "make test: the cluster lane failed" >&2; \
	  [ $$side_lane -eq 0 ] || echo "make test: the side lane failed" >&2; \
	  [ $$cluster_lane -eq 0 ] && [ $$side_lane -eq 0 ] && echo "make test: every tier passed in $$SECONDS s"'

lint: venv  ## ansible-lint, production profile
	$(BIN)/ansible-lint --profile production

sanity: venv  ## ansible-test sanity on a built copy of the collection
	tests/sanity.sh

# antsibull-docs copies the collection and the collections it depends on, each through `git ls-files`
# when it sits in a Git work tree; kubernetes.core and community.crypto sit in .venv, which this
# checkout ignores, so they would arrive empty. GIT_CEILING_DIRECTORIES stops Git above them at
# this checkout, and they are copied whole. References are checked against this collection, its
# dependencies and ansible.builtin (`dependent`; `all` would load every collection of the ansible
# package: minutes instead of seconds), and a reference to any other collection is an error.
docs-lint: venv  ## antsibull-docs lint of the module, plugin and role docs and of docs/docsite
	GIT_CEILING_DIRECTORIES=$(CURDIR) $(BIN)/antsibull-docs lint-collection-docs --plugin-docs \
	  --validate-collection-refs dependent --disallow-unknown-collection-refs --check-extra-docs-refs .

unit: venv  ## Unit tests of plugins/
	$(BIN)/pytest tests/unit

backstage-app-test: venv  ## Build the example Backstage app; run it on TLS-only PostgreSQL and in Chromium
	tests/backstage-app/setup-host.sh
	$(BIN)/pytest tests/backstage-app

cluster-up:  ## Start the test cluster (a real Kubernetes built from source into the cache)
	$(LOCKED) tests/cluster/cluster up

cluster-down:  ## Stop the test cluster; its state stays for the next cluster-up
	$(LOCKED) tests/cluster/cluster down

cluster-test: venv cluster-up  ## Acceptance tests of the test cluster (does not disturb its users)
	$(LOCKED) $(BIN)/pytest tests/cluster --ignore=tests/cluster/test_lifecycle.py

argspec-test: venv  ## Every role refuses bad input (wrong types, values outside choices, failed checks) before any change
	$(LOCKED) $(BIN)/pytest tests/argument_specs -p no:cacheprovider -rxXs

cluster-lifecycle-test: venv  ## down/up/crash tests, on a second cluster instance (TESTCLUSTER_INSTANCE=1)
	TESTCLUSTER_INSTANCE=1 $(LOCKED) bash -c 'trap "tests/cluster/cluster destroy" EXIT; \
	  tests/cluster/cluster up && $(BIN)/pytest tests/cluster/test_lifecycle.py'

molecule-cluster: venv  ## End to end: site.yml on the test cluster, idempotence, checks through the Ingress and in Chromium
	$(LOCKED) $(BIN)/molecule test -s cluster

molecule-split: venv  ## Plugins in separate pods: site.yml with a gateway and three backends, checks across pods, a move to one backend and back
	$(LOCKED) $(BIN)/molecule test -s split

# Laptop mode runs microk8s's own code over a bare test cluster on an instance of its own, which the
# scenario wipes at the start and destroys at the end (gawk: microk8s's wrappers use it).
MICROK8S_SNAP_INSTANCE ?= 1
molecule-default: venv cluster-up  ## Laptop mode through microk8s's own wrappers and addons (instance MICROK8S_SNAP_INSTANCE): 1.32 with the microk8s and image_import roles, then 1.35 with the whole site.yml and Chromium
	if tests/cluster/cluster status >/dev/null 2>&1; then eval "$$(tests/cluster/cluster env)"; fi; \
	  $(LOCKED) $(BIN)/pytest tests/microk8s -rs
	tests/ensure-packages.sh gawk
	export MICROK8S_SNAP_INSTANCE=$(MICROK8S_SNAP_INSTANCE) TESTCLUSTER_INSTANCE=$(MICROK8S_SNAP_INSTANCE); \
	  $(LOCKED) $(BIN)/molecule test -s default && $(LOCKED) $(BIN)/molecule test -s laptop

molecule-laptop: venv  ## Only the 1.35 laptop scenario of molecule-default: the whole site.yml through microk8s 1.35's own code, in Chromium
	tests/ensure-packages.sh gawk
	export MICROK8S_SNAP_INSTANCE=$(MICROK8S_SNAP_INSTANCE) TESTCLUSTER_INSTANCE=$(MICROK8S_SNAP_INSTANCE); \
	  $(LOCKED) $(BIN)/molecule test -s laptop

image-import-test: venv cluster-up  ## image_import against a real containerd (the test cluster's when it is up), no-op re-run included
	tests/image_import/setup-host.sh
	if tests/cluster/cluster status >/dev/null 2>&1; then eval "$$(tests/cluster/cluster env)"; fi; \
	  $(LOCKED) $(BIN)/pytest tests/image_import -rs

image-build-test: venv $(BIN)/.installed-build cluster-up  ## make deploy's path with no image variable: the example app's images built with podman from the recipes (offline bases), imported, deployed; no-op re-run; examples/images.yml verbatim
	tests/image_import/setup-host.sh
	$(LOCKED) $(BIN)/pytest tests/image_build -rs

images-test: venv cluster-up  ## Offline OCI images: build them all, run each confined as non-root with runc, and as restricted pods when the test cluster is up
	$(LOCKED) $(BIN)/pytest tests/images/test_images.py tests/images/test_images_cluster.py -rs

rotation-test: venv  ## Certificate rotation: postgres_server_certificate on a real PostgreSQL, then the rotation scenario on the test cluster
	tests/rotation/setup-host.sh
	$(BIN)/pytest tests/rotation
	eval "$$(tests/cluster/cluster env)" && $(LOCKED) $(BIN)/molecule test -s rotation

fault-test: venv cluster-up  ## Fault tests (long, not in make test): PostgreSQL pod deleted under writes, rotation killed mid-way, site.yml killed after pki, cluster restart (instance 2), changed variables
	$(LOCKED) $(BIN)/pytest tests/faults -p no:cacheprovider -rs

lifecycle-test: venv cluster-up  ## Long, not in make test: backup (to a volume and to SeaweedFS's S3), restore into a fresh namespace, refused and upgraded PostgreSQL majors (15 to 17), uninstall and reinstall, on the test cluster
	$(LOCKED) $(BIN)/pytest tests/lifecycle/test_backup_restore.py tests/lifecycle/test_s3.py \
	  tests/lifecycle/test_postgres_versions.py tests/lifecycle/test_uninstall.py -p no:cacheprovider -rs

molecule-postgres: venv  ## pki + postgres roles on the test cluster: idempotence, TLS cases with psql from a pod, bad input
	eval "$$(tests/cluster/cluster env)" && $(LOCKED) $(BIN)/molecule test -s postgres

demo: venv cluster-up  ## Backstage on the test cluster (no microk8s needed); prints the URL to open
	$(LOCKED) $(BIN)/ansible-playbook tests/testcluster/demo.yml $(ANSIBLE_ARGS)

constraints:  ## Re-pin constraints.txt from requirements.txt and requirements-test.txt
	rm -rf $(VENV).pin && $(PYTHON) -m venv $(VENV).pin
	$(VENV).pin/bin/pip install --quiet -r requirements-test.txt
	{ echo "# Generated by 'make constraints' from requirements.txt and requirements-test.txt: the exact versions every run uses."; \
	  $(VENV).pin/bin/pip freeze; } > constraints.txt
	rm -rf $(VENV).pin

# The execution environment's Python packages with the sha256 of every file PyPI has for each
# version (all platforms), at constraints.txt's versions: its build installs them with
# --require-hashes and no index after that. Run after `make constraints`.
EE_DIR := images/execution-environment
PIP_COMPILE = $(VENV).pin/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
ee-requirements:  ## Re-pin the execution environment's hashed requirements (images/execution-environment/requirements-*.txt) from constraints.txt
	rm -rf $(VENV).pin && $(PYTHON) -m venv $(VENV).pin
	$(VENV).pin/bin/pip install --quiet pip-tools
	cd $(EE_DIR) && ../../$(PIP_COMPILE) --output-file requirements-ee.txt requirements-ee.in
	cd $(EE_DIR) && ../../$(PIP_COMPILE) --output-file $(CURDIR)/$(VENV).pin/collections.txt requirements-collections.in
	{ echo "# Generated by 'make ee-requirements' from requirements-collections.in: the ansible package alone."; \
	  awk '/^ansible==/ {keep = 1; print; next} /^[^ ]/ {keep = 0} keep && !/# via|#   -/' $(VENV).pin/collections.txt; \
	} > $(EE_DIR)/requirements-collections.txt
	rm -rf $(VENV).pin

# The docs site. `antsibull-docs sphinx-init` writes the Sphinx project (conf.py, antsibull-docs.cfg,
# build.sh) into dist/docs, afresh each time (never committed); then the two steps of its build.sh:
# antsibull-docs writes the RST of every module, filter, role entry point and docs/docsite guide,
# and Sphinx renders it. build.sh runs `sphinx-build -W`, which fails wherever docs.ansible.com is
# out of reach: its intersphinx inventory resolves the links to the Ansible docsite's own pages and
# to other collections' plugins. So Sphinx runs without -W, and every warning fails the build except
# those (an unresolved label of this collection always fails): the site also builds offline.
DOCS_DIR := dist/docs
DOCS_OFFLINE_WARNINGS := failed to reach any of the inventories|^intersphinx inventory '|undefined label: '(common_return_values|action_plugins|ansible_configuration_settings|ansible_collections\.[^']*)'

docs: venv  ## Build the collection docs site into dist/docs/build/html
	rm -rf $(DOCS_DIR) && mkdir -p -m 0755 $(DOCS_DIR)
	$(BIN)/antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error \
	  --project backstage.k8s --copyright "backstage.k8s maintainers" --title backstage.k8s \
	  --dest-dir $(DOCS_DIR) backstage.k8s >/dev/null
	cd $(DOCS_DIR) && antsibull-docs --config-file antsibull-docs.cfg collection --fail-on-error \
	  --use-current --squash-hierarchy --dest-dir rst backstage.k8s
	$(BIN)/sphinx-build -M html $(DOCS_DIR)/rst $(DOCS_DIR)/build -c $(DOCS_DIR) -q --keep-going \
	  2>$(DOCS_DIR)/warnings.log || { cat $(DOCS_DIR)/warnings.log >&2; exit 1; }
	@if grep -vE "$(DOCS_OFFLINE_WARNINGS)" $(DOCS_DIR)/warnings.log >&2 \
	    || grep -F "label: 'ansible_collections.backstage.k8s." $(DOCS_DIR)/warnings.log >&2; then \
	  echo "make docs: Sphinx warnings above (all in $(DOCS_DIR)/warnings.log)" >&2; exit 1; fi
	@n=$$(grep -cE "$(DOCS_OFFLINE_WARNINGS)" $(DOCS_DIR)/warnings.log || true); [ "$$n" = 0 ] || \
	  echo "Intersphinx inventories unreachable: links to docs.ansible.com left out ($$n lines in $(DOCS_DIR)/warnings.log)"
	@echo "Docs: $(DOCS_DIR)/build/html/index.html"

build: venv-runtime  ## Build the collection tarball (the product only) into dist/
	$(BIN)/ansible-galaxy collection build --force --output-path dist/

package-test: venv cluster-up  ## The built tarball installed into a runtime-only virtualenv: site.yml (check mode, then for real) and rotate.yml from that copy
	$(LOCKED) $(BIN)/pytest tests/package -rs

clean:  ## Remove the virtualenv and build outputs
	rm -rf $(VENV) dist tests/output
