"""Helpers of the lifecycle tests (backup, restore, uninstall, PostgreSQL major versions): a
Backstage deployment on the test cluster made with site.yml, as the fault tests make theirs (their
Deployment helper and tests/faults/deploy.yml are reused), and the lifecycle playbooks run from
this host."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import (  # noqa: E402  (tests/lib)
    REPO, Cluster, ansible_env, ansible_playbook, artifacts_dir, play_recap, venv_collections_path,
)


def _load_faults_helpers() -> Any:
    """tests/faults/conftest.py as a plain module (its Deployment, write_rows, ...), under a name of
    its own so that it does not clash with this conftest."""
    spec = importlib.util.spec_from_file_location("faults_helpers", REPO / "tests" / "faults" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults_helpers"] = module
    spec.loader.exec_module(module)
    return module


faults = _load_faults_helpers()
Deployment = faults.Deployment

COLLECTIONS_PATH = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or venv_collections_path()
# BACKSTAGE_K8S_LIFECYCLE_NAMESPACE runs a file of its own beside another run, in another namespace.
NAMESPACE = os.environ.get("BACKSTAGE_K8S_LIFECYCLE_NAMESPACE") or "backstage-lifecycle"
INGRESS_HOST = f"{NAMESPACE}.localhost"
ARTIFACTS = artifacts_dir("lifecycle")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} lifecycle: {message}", file=sys.stderr, flush=True)


class PlaybookRun:
    """One ansible-playbook run: its output, exit status and recap."""

    def __init__(self, name: str, args: tuple[str, ...], cluster: Cluster) -> None:
        started = time.monotonic()
        result = ansible_playbook(*args, env=ansible_env(COLLECTIONS_PATH, base=cluster.process_env), timeout=1800)
        self.seconds = time.monotonic() - started
        self.returncode = result.returncode
        self.output = result.stdout + result.stderr
        (ARTIFACTS / f"{name}.log").write_text(self.output)
        log(f"{name}: exit {self.returncode} in {self.seconds:.0f} s")

    @property
    def recap(self) -> dict[str, int]:
        return play_recap(self.output)

    def assert_ok(self) -> "PlaybookRun":
        assert self.returncode == 0, f"failed:\n{self.output[-6000:]}"
        return self


def run_playbook(name: str, playbook: str, variables: dict[str, Any], *extra: str,
                 cluster: Cluster) -> PlaybookRun:
    """playbooks/PLAYBOOK (backstage.k8s.PLAYBOOK) against the test cluster with ``variables``."""
    variables = {"backstage_k8s_kubeconfig": cluster.env["KUBECONFIG"], **variables}
    return PlaybookRun(name, (f"backstage.k8s.{playbook}", "-e", json.dumps(variables), *extra), cluster)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cluster = Cluster()
    assert cluster.is_up(), f"test cluster instance {cluster.instance} is not up: tests/cluster/cluster up"
    return cluster


@pytest.fixture(scope="session")
def deployment(cluster: Cluster) -> Iterator[Any]:
    """Backstage deployed from nothing with site.yml in the lifecycle tests' namespace (one backend
    and one frontend replica); the namespace is removed afterwards."""
    deployment = Deployment(cluster, NAMESPACE, INGRESS_HOST)
    deployment.delete_namespace()
    deployment.deploy("lifecycle-deploy")
    deployment.wait_until_answering(300)
    yield deployment
    deployment.delete_namespace()
