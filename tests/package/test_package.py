# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The collection as users get it: the tarball `make build` writes, installed with
``ansible-galaxy collection install`` into a virtualenv that holds only the runtime requirements
(requirements.txt), then ``backstage.k8s.site`` in check mode, a real deploy and a forced
``backstage.k8s.rotate`` from that installed copy on the test cluster.

The virtualenv is cached by the hash of requirements.txt and constraints.txt (it never holds the
checkout); the collection is installed into a new directory every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import (  # noqa: E402  (tests/lib)
    CLIENT_SECRET, REPO, SERVER_SECRET, Kubectl, artifacts_dir, play_recap,
)

CACHE = Path(os.environ.get("BACKSTAGE_K8S_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "backstage-k8s")
NAMESPACE = "backstage-package"
ARTIFACTS = artifacts_dir("package")
LEAF_SECRETS = (SERVER_SECRET, CLIENT_SECRET)
# Product parts that must ship, and rig parts that must not.
MUST_SHIP = (
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
    "requirements.txt", "playbooks/site.yml", "playbooks/rotate.yml",
    "playbooks/backup.yml", "playbooks/restore.yml", "playbooks/uninstall.yml",
    "roles/postgres_backup/files/backup.sh", "roles/postgres_backup/files/restore.sh",
    "roles/postgres_backup/files/backups.sh",
    "roles/uninstall/tasks/main.yml", "roles/postgres/tasks/version.yml",
    "plugins/modules/cert_cn_check.py", "plugins/module_utils/_certificate.py",
    "roles/backstage/tasks/main.yml", "roles/pki/meta/argument_specs.yml",
    "images/backstage-frontend/frontend-entrypoint.sh",
    "images/backstage-frontend/inject-runtime-config.sh",
    "images/backstage-frontend/nginx.conf",
    "images/backstage-frontend/Containerfile", "images/backstage-backend/Containerfile",
    "examples/backstage-app/package.json", "examples/backstage-app/yarn.lock",
    "examples/backstage-app/.yarn/releases/yarn-4.13.0.cjs",
    "examples/backstage-app/packages/backend/src/index.ts",
    "examples/backstage-app/examples/template/template.yaml",
)
MUST_NOT_SHIP = ("tests/", "molecule/", "bench/", ".ci/", "inventory/", "Makefile",
                 "constraints.txt", "requirements-test.txt", "ansible.cfg",
                 # The example app ships as sources: nothing its install or builds write.
                 "examples/backstage-app/node_modules/", "examples/backstage-app/packages/app/dist/",
                 "examples/backstage-app/packages/backend/dist/", "examples/backstage-app/dist-types/")


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    result = run([str(galaxy), "collection", "build", "--output-path", str(out), str(REPO)])
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("backstage-k8s-*.tar.gz")
    (ARTIFACTS / "tarball.json").write_text(json.dumps({"name": built.name, "bytes": built.stat().st_size}) + "\n")
    return built


@pytest.fixture(scope="module")
def runtime_venv() -> Path:
    """A virtualenv with requirements.txt only, pinned by constraints.txt."""
    key = hashlib.sha256()
    for name in ("requirements.txt", "constraints.txt"):
        key.update((REPO / name).read_bytes())
    key.update(sys.version.encode())
    venv = CACHE / "package-venv" / key.hexdigest()[:16]
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(REPO / "requirements.txt"),
                        "-c", str(REPO / "constraints.txt")], check=True)
        (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="module")
def installed(tarball: Path, runtime_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tarball installed into a new collections path; returns the environment to run Ansible
    with it: that path, the runtime virtualenv's own site-packages (kubernetes.core and
    community.crypto of PyPI's ansible package) and no checkout anywhere."""
    root = tmp_path_factory.mktemp("installed")
    collections = root / "collections"
    cfg = root / "ansible.cfg"
    cfg.write_text("[defaults]\ninterpreter_python = auto_silent\nretry_files_enabled = false\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANSIBLE_", "MOLECULE_", "VIRTUAL_ENV"))}
    env.update({
        "PATH": f"{runtime_venv / 'bin'}:{env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_HOME": str(root / "ansible-home"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    })
    # Galaxy is not reachable: the dependencies come from PyPI's ansible package in the virtualenv.
    result = run([str(runtime_venv / "bin" / "ansible-galaxy"), "collection", "install", "--no-deps",
                  "-p", str(collections), str(tarball)], env=env, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    env["PACKAGE_ROOT"] = str(root)
    return env


def test_the_tarball_ships_the_product_and_no_test_rig(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = {member.name for member in tar.getmembers()}
    missing = [path for path in MUST_SHIP if path not in names]
    shipped_rig = sorted(name for name in names for rig in MUST_NOT_SHIP
                         if name == rig.rstrip("/") or name.startswith(rig))
    assert not missing, f"missing from {tarball.name}: {missing}"
    assert not shipped_rig, f"test rig in {tarball.name}: {shipped_rig[:20]}"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_runtime_virtualenv_holds_no_test_tooling(runtime_venv: Path) -> None:
    frozen = run([str(runtime_venv / "bin" / "pip"), "freeze"]).stdout.lower()
    assert "ansible-core==" in frozen and "kubernetes==" in frozen
    for tool in ("molecule", "pytest", "ansible-lint", "pytest-testinfra"):
        assert f"\n{tool}==" not in f"\n{frozen}", f"{tool} is not a runtime requirement"


def test_ansible_resolves_the_installed_copy_and_its_dependencies(installed: dict[str, str], runtime_venv: Path) -> None:
    result = run([str(runtime_venv / "bin" / "ansible-galaxy"), "collection", "list", "--format", "json"],
                 env=installed)
    assert result.returncode == 0, result.stderr
    found = {path: list(collections) for path, collections in json.loads(result.stdout).items()}
    holders = [path for path, collections in found.items() if "backstage.k8s" in collections]
    assert holders == [str(Path(installed["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections")], found
    for dependency in ("kubernetes.core", "community.crypto"):
        assert any(dependency in collections for collections in found.values()), found


def playbook(installed: dict[str, str], runtime_venv: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(runtime_venv / "bin" / "ansible-playbook"), *args], env=installed,
               cwd=Path(installed["PACKAGE_ROOT"]))


@pytest.fixture(scope="module")
def kubectl() -> Iterator[Kubectl]:
    """kubectl in the test's namespace, which starts absent and is deleted afterwards."""
    cluster = Kubectl()
    cluster("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=300)
    yield cluster.in_namespace(NAMESPACE)
    cluster("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")


def test_site_check_mode_deploy_and_rotation_run_from_the_installed_copy(
        installed: dict[str, str], runtime_venv: Path, kubectl: Kubectl) -> None:
    extra = ["-e", json.dumps({"testcluster_repo": str(REPO), "package_namespace": NAMESPACE})]
    site = str(REPO / "tests" / "package" / "deploy.yml")
    check = playbook(installed, runtime_venv, site, "--check", *extra)
    (ARTIFACTS / "site-check.log").write_text(check.stdout + check.stderr)
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert "does not exist yet" in check.stdout
    assert kubectl.run("get", "namespace", NAMESPACE, check=False).returncode != 0, "check mode created the namespace"

    deploy = playbook(installed, runtime_venv, site, *extra)
    (ARTIFACTS / "site.log").write_text(deploy.stdout + deploy.stderr)
    assert deploy.returncode == 0, deploy.stdout[-4000:] + deploy.stderr[-2000:]
    assert play_recap(deploy.stdout)["failed"] == 0
    # The objects carry the installed collection's work: the CronJob runs the rotation image.
    assert kubectl.get("cronjob", "backstage-cert-rotation")["spec"]["jobTemplate"]

    before = {name: kubectl.certificate(name).serial_number for name in LEAF_SECRETS}
    rotate = playbook(installed, runtime_venv, "backstage.k8s.rotate", "-e", json.dumps({
        "backstage_k8s_kubeconfig": kubectl.env["KUBECONFIG"], "cert_rotation_namespace": NAMESPACE,
        "cert_rotation_force": True}))
    (ARTIFACTS / "rotate.log").write_text(rotate.stdout + rotate.stderr)
    assert rotate.returncode == 0, rotate.stdout[-4000:] + rotate.stderr[-2000:]
    after = {name: kubectl.certificate(name).serial_number for name in LEAF_SECRETS}
    assert all(after[name] != before[name] for name in LEAF_SECRETS), (before, after)


def test_requires_ansible_is_the_range_the_tests_install() -> None:
    """meta/runtime.yml claims exactly the ansible-core range requirements.txt installs, and the
    pinned version the tests run is in it."""
    claimed = SpecifierSet(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"])
    installed = [Requirement(line) for line in (REPO / "requirements.txt").read_text().splitlines()
                 if line.startswith("ansible-core")]
    assert [req.specifier for req in installed] == [claimed]
    pinned = [line.split("==")[1] for line in (REPO / "constraints.txt").read_text().splitlines()
              if line.startswith("ansible-core==")]
    assert len(pinned) == 1 and pinned[0] in claimed, (pinned, claimed)
