"""Fixtures for the postgres scenario: the cluster through kubectl, and a psql client pod.

Every check is a real connection from a pod inside the cluster to the PostgreSQL the roles
deployed; the certificates for the refused cases are made here, signed by the scenario's CA
(read from its Secret) or by a CA of their own.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "lib"))

from testcluster import (  # noqa: E402  (tests/lib)
    CA_SECRET, CLIENT_SECRET, DATABASE_USER, SERVER_SECRET, Kubectl, ansible_env, ansible_playbook,
)
from testpki import Material, make_ca, make_client_cert  # noqa: E402  (tests/lib)

NAMESPACE = os.environ.get("POSTGRES_SCENARIO_NAMESPACE", "bk8s-molecule-postgres")
KUBECTL = Kubectl()
CONVERGE = Path(__file__).resolve().parents[1] / "converge.yml"
CLIENT_POD = "tls-client"
CASES_SECRET = "tls-client-cases"
CERT_DIR = "/certs"

# The roles' defaults, as the scenario leaves them.
SERVICE = "postgres"
STATEFULSET = "postgres"


def kubectl(*args: str, input: str | None = None, check: bool = True,
            timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the test cluster."""
    return KUBECTL.run(*args, input=input, check=check, timeout=timeout)


def kubectl_json(*args: str) -> Any:
    """`kubectl ARGS -o json` (ARGS with the verb), parsed."""
    return json.loads(kubectl(*args, "-o", "json").stdout)


def secret_data(name: str) -> dict[str, bytes]:
    return KUBECTL.in_namespace(NAMESPACE).secret(name)


def put_tls_secret(name: str, material: Material, ca_pem: bytes) -> None:
    """Overwrite the certificate and key of a kubernetes.io/tls Secret, keeping its metadata."""
    patch = {
        "data": {
            "tls.crt": base64.b64encode(material.certificate).decode(),
            "tls.key": base64.b64encode(material.key).decode(),
            "ca.crt": base64.b64encode(ca_pem).decode(),
        }
    }
    kubectl("-n", NAMESPACE, "patch", "secret", name, "--type=merge", "-p", json.dumps(patch))


def run_converge(extra_vars: dict[str, Any], *options: str) -> subprocess.CompletedProcess[str]:
    """Run the scenario's converge playbook (both roles) with extra variables and options."""
    all_vars = {"ansible_python_interpreter": sys.executable, **extra_vars}
    # Molecule's own ansible.cfg stays (repo_config=False), as for converge itself.
    return ansible_playbook("-i", "localhost,", "-c", "local", *options, str(CONVERGE), "-e", json.dumps(all_vars),
                            env=ansible_env(repo_config=False), timeout=900, cwd=None)


def pod_uid(name: str) -> str:
    return kubectl("-n", NAMESPACE, "get", "pod", name, "-o", "jsonpath={.metadata.uid}").stdout


@pytest.fixture(scope="session")
def scenario_ca() -> tuple[x509.Certificate, Any]:
    """The CA the pki role made, with its key (for certificates it would never issue)."""
    data = secret_data(CA_SECRET)
    return (
        x509.load_pem_x509_certificate(data["tls.crt"]),
        serialization.load_pem_private_key(data["tls.key"], password=None),
    )


@pytest.fixture(scope="session")
def postgres_image() -> str:
    """The image the StatefulSet runs: it has psql, so it serves as the client too."""
    sts = kubectl_json("-n", NAMESPACE, "get", "statefulset", STATEFULSET)
    return sts["spec"]["template"]["spec"]["containers"][0]["image"]


def _client_pod_manifest(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_POD, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": CLIENT_POD}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 999,
                "runAsGroup": 999,
                "fsGroup": 999,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "psql",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PGCONNECT_TIMEOUT", "value": "10"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "certs", "mountPath": CERT_DIR, "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            # root-owned, group 999, mode 0640: what libpq accepts for a key it does not own.
            "volumes": [
                {"name": "certs", "secret": {"secretName": CASES_SECRET, "defaultMode": 0o640}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


@pytest.fixture(scope="session")
def client_pod(postgres_image: str, scenario_ca: tuple[x509.Certificate, Any]) -> Iterator[str]:
    """A pod in the namespace with psql and every client certificate the cases need."""
    ca_cert, ca_key = scenario_ca
    client = secret_data(CLIENT_SECRET)
    other_ca_cert, other_ca_key = make_ca("another CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    materials = {
        "right": Material(client["tls.crt"], client["tls.key"]),
        "other-ca": make_client_cert(DATABASE_USER, other_ca_cert, other_ca_key),
        "wrong-cn": make_client_cert("backstage", ca_cert, ca_key),
        "expired": make_client_cert(
            DATABASE_USER, ca_cert, ca_key, not_before=now - datetime.timedelta(days=10),
            not_after=now - datetime.timedelta(days=1),
        ),
    }
    data = {"ca.crt": base64.b64encode(secret_data(SERVER_SECRET)["ca.crt"]).decode()}
    for name, material in materials.items():
        data[f"{name}.crt"] = base64.b64encode(material.certificate).decode()
        data[f"{name}.key"] = base64.b64encode(material.key).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CASES_SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": data,
    }
    kubectl("-n", NAMESPACE, "delete", "pod", CLIENT_POD, "--ignore-not-found", "--wait=true")
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-f", "-", input=json.dumps(_client_pod_manifest(postgres_image)))
    kubectl("-n", NAMESPACE, "wait", "pod", CLIENT_POD, "--for=condition=Ready", "--timeout=120s", timeout=150)
    yield CLIENT_POD
    kubectl("-n", NAMESPACE, "delete", "pod", CLIENT_POD, "--ignore-not-found", "--wait=false", check=False)
    kubectl("-n", NAMESPACE, "delete", "secret", CASES_SECRET, "--ignore-not-found", check=False)


def conninfo(**overrides: str) -> str:
    """A libpq connection string: the right certificate with verify-full unless overridden."""
    params = {
        "host": f"{SERVICE}.{NAMESPACE}.svc",
        "port": "5432",
        "dbname": "postgres",
        "user": DATABASE_USER,
        "sslmode": "verify-full",
        "sslrootcert": f"{CERT_DIR}/ca.crt",
        "sslcert": f"{CERT_DIR}/right.crt",
        "sslkey": f"{CERT_DIR}/right.key",
    }
    params.update(overrides)
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in params.items())


def psql(host: Any, pod: str, info: str, sql: str) -> Any:
    """Run sql with psql in the client pod; returns testinfra's CommandResult."""
    return host.run(shlex.join([*KUBECTL.argv(), "-n", NAMESPACE, "exec", pod, "--",
                                "psql", info, "-v", "ON_ERROR_STOP=1", "-X", "-At", "-c", sql]))


def wait_statefulset_ready(timeout: int = 240) -> None:
    kubectl(
        "-n", NAMESPACE, "rollout", "status", f"statefulset/{STATEFULSET}", f"--timeout={timeout}s",
        timeout=timeout + 30,
    )
