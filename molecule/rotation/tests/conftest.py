"""Fixtures of the rotation scenario: the test cluster's environment, kubectl, the certificates
in the Secrets and as PostgreSQL presents them, and rotations started as Jobs from the CronJob
with the collection's own playbooks/rotate.yml."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from cryptography import x509

SCENARIO_DIR = Path(__file__).resolve().parent.parent
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or SCENARIO_DIR.parent.parent)
ARTIFACTS = REPO / "artifacts" / "molecule-rotation"
sys.path.insert(0, str(REPO / "bench"))

import availability  # noqa: E402  (bench/availability.py)
from ansible_collections.backstage.k8s.plugins.module_utils import _postgres_tls  # noqa: E402

# The directory holding ansible_collections (the virtualenv's link to this checkout), named
# explicitly so that no other installed copy of the collection is used.
COLLECTIONS_PATH = Path(_postgres_tls.__file__).parents[5]

CRONJOB = "backstage-cert-rotation"
SERVER_SECRET = "postgres-server-tls"
CLIENT_SECRET = "backstage-postgres-client-tls"
CA_SECRET = "backstage-pki-ca"
BACKEND = "backstage-backend"
BACKEND_SELECTOR = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"
POSTGRES_SELECTOR = "app.kubernetes.io/name=postgres"


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO / "tests" / "cluster" / "cluster"), "env"],
        check=True, capture_output=True, text=True,
    ).stdout
    return dict(re.findall(r"^export ([A-Z_]+)=(.*)$", out, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def scenario() -> dict[str, Any]:
    return yaml.safe_load((SCENARIO_DIR / "vars" / "scenario.yml").read_text())


@pytest.fixture(scope="session")
def namespace(scenario: dict[str, Any]) -> str:
    return scenario["backstage_k8s_namespace"]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


Kubectl = Callable[..., str]


@pytest.fixture(scope="session")
def kubectl(cluster_env: dict[str, str], namespace: str) -> Kubectl:
    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            [cluster_env["TESTCLUSTER_KUBECTL"], "--kubeconfig", cluster_env["KUBECONFIG"], "-n", namespace, *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    return run


@pytest.fixture(scope="session")
def k8s(kubectl: Kubectl) -> Callable[..., Any]:
    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json"))

    return get


class Certificates:
    """The certificates in the Secrets, and the one PostgreSQL presents."""

    def __init__(self, k8s: Callable[..., Any], kubectl_argv: list[str], namespace: str) -> None:
        self._k8s = k8s
        self._kubectl_argv = kubectl_argv
        self._namespace = namespace

    def secret(self, name: str) -> dict[str, str]:
        data = self._k8s("secret", name)["data"]
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def in_secret(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.secret(name)["tls.crt"].encode())

    @contextlib.contextmanager
    def port_forward(self) -> Iterator[int]:
        """A local port forwarded to the PostgreSQL Service (the host cannot reach pods directly)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen(
            [*self._kubectl_argv, "port-forward", "svc/postgres", f"{port}:5432"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                time.sleep(0.3)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)

    def query(self, sql: str | None = None) -> dict[str, Any]:
        """Connect to PostgreSQL as the backend does (verified TLS, client certificate)."""
        client = self.secret(CLIENT_SECRET)
        with self.port_forward() as port:
            return _postgres_tls.connect_and_query(
                "127.0.0.1", port, f"postgres.{self._namespace}.svc.cluster.local", client["ca.crt"],
                client["tls.crt"], client["tls.key"], user="postgres", query=sql,
            )

    def presented_serial(self) -> int:
        return self.query()["server_certificate"]["serial_number"]


@pytest.fixture(scope="session")
def certificates(k8s: Callable[..., Any], namespace: str, cluster_env: dict[str, str]) -> Certificates:
    argv = [cluster_env["TESTCLUSTER_KUBECTL"], "--kubeconfig", cluster_env["KUBECONFIG"], "-n", namespace]
    return Certificates(k8s, argv, namespace)


Rotate = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def rotate(cluster_env: dict[str, str], namespace: str, artifacts: Path) -> Rotate:
    """Run playbooks/rotate.yml from this host: it starts a Job from the CronJob and follows it."""

    def run(*extra: str, check: bool = True, log_name: str = "rotate") -> subprocess.CompletedProcess:
        command = [
            str(REPO / ".venv" / "bin" / "ansible-playbook"), "backstage.k8s.rotate",
            "-e", json.dumps({"backstage_k8s_kubeconfig": cluster_env["KUBECONFIG"], "cert_rotation_namespace": namespace}),
            *extra,
        ]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1800, check=False,
                                env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                                     "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH)})
        (artifacts / f"{log_name}.log").write_text(result.stdout + result.stderr)
        if check:
            assert result.returncode == 0, f"rotate.yml failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        return result

    return run


@pytest.fixture(scope="session")
def probe_factory(cluster_env: dict[str, str], scenario: dict[str, Any]) -> Callable[[], availability.Probe]:
    def make() -> availability.Probe:
        return availability.Probe(cluster_env["TESTCLUSTER_INGRESS_URL"], scenario["backstage_ingress_host"])

    return make
