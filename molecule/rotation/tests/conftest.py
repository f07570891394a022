"""Fixtures of the rotation scenario: kubectl in its namespace, the certificates in the Secrets
and as PostgreSQL presents them, and rotations started as Jobs from the CronJob with the
collection's own playbooks/rotate.yml (the helpers live in tests/lib/testcluster.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509

SCENARIO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCENARIO_DIR.parent.parent / "tests" / "lib"))
sys.path.insert(0, str(SCENARIO_DIR.parent.parent / "bench"))

import availability  # noqa: E402  (bench/availability.py)
# pylint: disable-next=unused-import
from testcluster import (  # noqa: E402,F401  (tests/lib; the fixtures every scenario shares)
    Kubectl, artifacts, client_certificate_connections, cluster_env, namespace, postgres_query, presented_serial,
    run_rotate, scenario, venv_collections_path,
)

CRONJOB = "backstage-cert-rotation"
BACKEND = "backstage-backend"
BACKEND_SELECTOR = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"
POSTGRES_SELECTOR = "app.kubernetes.io/name=postgres"


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    return SCENARIO_DIR


@pytest.fixture(scope="session")
def kubectl(namespace: str) -> Kubectl:
    """kubectl against the test cluster, in the scenario's namespace."""
    return Kubectl(namespace)


@pytest.fixture(scope="session")
def k8s(kubectl: Kubectl) -> Callable[..., Any]:
    """`kubectl get ARGS -o json` in the scenario's namespace, parsed."""
    return kubectl.get


class Certificates:
    """The certificates in the Secrets, and the one PostgreSQL presents."""

    def __init__(self, kubectl: Kubectl) -> None:
        self._kubectl = kubectl

    def in_secret(self, name: str) -> x509.Certificate:
        return self._kubectl.certificate(name)

    def query(self, sql: str | None = None) -> dict[str, Any]:
        """Connect to PostgreSQL as the backend does (verified TLS, client certificate)."""
        return postgres_query(self._kubectl, sql)

    def presented_serial(self) -> int:
        return presented_serial(self._kubectl)

    def client_connections(self) -> list[list[Any]]:
        """[address, client certificate serial] of each TCP client, as pg_stat_ssl shows them."""
        return client_certificate_connections(self._kubectl)


@pytest.fixture(scope="session")
def certificates(kubectl: Kubectl) -> Certificates:
    return Certificates(kubectl)


Rotate = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def rotate(namespace: str, artifacts: Path) -> Rotate:
    """Run playbooks/rotate.yml from this host: it starts a Job from the CronJob and follows it."""

    def run(*extra: str, check: bool = True, log_name: str = "rotate") -> subprocess.CompletedProcess:
        return run_rotate(cluster_env()["KUBECONFIG"], namespace, *extra, log=artifacts / f"{log_name}.log",
                          collections_path=venv_collections_path(), check=check)

    return run


@pytest.fixture(scope="session")
def probe_factory(scenario: dict[str, Any]) -> Callable[[], availability.Probe]:
    def make() -> availability.Probe:
        return availability.Probe(cluster_env()["TESTCLUSTER_INGRESS_URL"], scenario["backstage_ingress_host"])

    return make


@pytest.fixture(scope="session")
def replaced_client() -> dict[str, str]:
    """The client certificate Secret's data (tls.crt, tls.key, ca.crt) before the forced rotation
    replaced it; the forced rotation test fills it."""
    return {}
