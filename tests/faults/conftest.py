"""Helpers of the fault tests: a test cluster instance, a Backstage deployment on it (site.yml
through tests/faults/deploy.yml), writes and reads through the Ingress, SQL and certificates
through a port-forward with the client certificate, and the checks every fault test shares."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import (  # noqa: E402  (tests/lib)
    CA_SECRET, CLIENT_SECRET, DATABASE_USER, REPO, SERVER_SECRET, Cluster, Kubectl, ansible_env, ansible_playbook,
    artifacts_dir, client_certificate_connections, guest_token, http_request, postgres_query, presented_serial,
    play_recap, run_rotate, venv_collections_path, wait_until,
)

# Where Ansible finds backstage.k8s: ANSIBLE_COLLECTIONS_PATH as the Makefile exports it, else the
# directory holding the virtualenv's link to this checkout.
COLLECTIONS_PATH = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or venv_collections_path()

NAMESPACE = "backstage-faults"
INGRESS_HOST = "backstage-faults.localhost"
# One backend and one frontend replica keep the 2-core test machine usable by others; the test of
# changed variables scales the backend up.
BASE_VARS: dict[str, Any] = {"backstage_replicas": 1, "backstage_frontend_replicas": 1}

BACKEND = "backstage-backend"
FRONTEND = "backstage-frontend"
CRONJOB = "backstage-cert-rotation"
BACKEND_SELECTOR = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"
FRONTEND_SELECTOR = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=frontend"
POSTGRES_SELECTOR = "app.kubernetes.io/name=postgres"
SERIAL_ANNOTATION = "backstage.k8s/postgres-client-certificate-serial"

LOCATIONS_PATH = "/api/catalog/locations"
READINESS_PATH = "/.backstage/health/v1/readiness"
CATALOG_PATH = "/api/catalog/entities?limit=1"


def log(message: str) -> None:
    """Progress on stderr (pytest -s shows it; the artifacts keep the numbers)."""
    print(f"{time.strftime('%H:%M:%S')} faults: {message}", file=sys.stderr, flush=True)


# -- deployment ---------------------------------------------------------------------------------

SITE_PLAY = "PLAY [Deploy Backstage on Kubernetes]"


@dataclass
class Recap:
    ok: int
    changed: int
    failed: int
    output: str

    @property
    def site_output(self) -> str:
        """The output of site.yml's own play (after the one that builds and imports the test images)."""
        assert SITE_PLAY in self.output, f"no {SITE_PLAY!r} in the output"
        return self.output.split(SITE_PLAY, 1)[1]

    @property
    def site_changes(self) -> list[str]:
        """What site.yml's play changed: its "changed:" results, each with the task's name."""
        changes, task = [], ""
        for line in self.site_output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed: ["):
                changes.append(f"{task}: {line}")
        return changes


class Deployment:
    """Backstage deployed with site.yml into one namespace of one cluster instance."""

    def __init__(self, cluster: Cluster, namespace: str = NAMESPACE, host: str = INGRESS_HOST) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.host = host
        self.url = cluster.env["TESTCLUSTER_INGRESS_URL"].rstrip("/")
        # kubectl in the namespace: ``deployment.kubectl(ARGS)`` prints, ``.get(ARGS)`` parses.
        self.kubectl = Kubectl(namespace, cluster.env)
        self.get = self.kubectl.get
        self._token: Optional[str] = None

    # ansible
    def deploy(self, log_name: str, **overrides: Any) -> Recap:
        """Run site.yml (tests/faults/deploy.yml) with BASE_VARS and ``overrides`` as extra vars."""
        extra = {"faults_namespace": self.namespace, "faults_ingress_host": self.host, **BASE_VARS, **overrides}
        started = time.monotonic()
        result = ansible_playbook(str(REPO / "tests" / "faults" / "deploy.yml"), "-e", json.dumps(extra),
                                  env=ansible_env(COLLECTIONS_PATH, base=self.cluster.process_env), timeout=2400)
        output = result.stdout + result.stderr
        write_artifact(f"{log_name}.log", output)
        log(f"site.yml ({log_name}) took {time.monotonic() - started:.0f} s")
        assert result.returncode == 0, f"site.yml failed:\n{result.stdout[-5000:]}\n{result.stderr[-2000:]}"
        counts = play_recap(output)
        return Recap(counts["ok"], counts["changed"], counts["failed"], output)

    def delete_namespace(self) -> None:
        self.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=true",
                     namespaced=False, timeout=600)

    def rotate(self, log_name: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        """playbooks/rotate.yml from this host: a Job from the rotation CronJob."""
        return run_rotate(self.cluster.env["KUBECONFIG"], self.namespace, *extra, log=artifacts_dir("faults") / f"{log_name}.log",
                          collections_path=COLLECTIONS_PATH, check=check)

    # HTTP through the Ingress
    def http(self, method: str, path: str, body: Any = None, timeout: float = 5,
             auth: bool = True) -> tuple[int, bytes]:
        response = http_request(self.url + path, method, self.host, self.token() if auth else None, body, timeout)
        if response.status == 401 and auth:
            self._token = None
        return response.status, response.body

    def token(self) -> str:
        if self._token is None:
            self._token = guest_token(self.url, self.host, wait=300)
        return self._token

    def add_location(self, target: str, timeout: float = 5) -> int:
        """POST one catalog location (a row in the catalog's database); the HTTP status."""
        status = self.http("POST", LOCATIONS_PATH, {"type": "url", "target": target}, timeout=timeout)[0]
        return status

    def location_targets(self) -> set[str]:
        status, body = self.http("GET", LOCATIONS_PATH, timeout=30)
        assert status == 200, f"GET {LOCATIONS_PATH}: {status} {body[:300]!r}"
        return {item["data"]["target"] for item in json.loads(body)}

    def answer(self) -> str:
        """What Backstage answers through the Ingress: "answers" for readiness 200 and a catalog
        read 200 with a list, else what it answered."""
        try:
            ready = self.http("GET", READINESS_PATH, auth=False)[0]
            status, body = self.http("GET", CATALOG_PATH)
            if ready == 200 and status == 200 and isinstance(json.loads(body), list):
                return "answers"
            return f"readiness {ready}, catalog {status} {body[:200]!r}"
        except (OSError, ValueError) as error:
            return f"{type(error).__name__}: {error}"

    def answers(self) -> bool:
        return self.answer() == "answers"

    def wait_until_answering(self, bound: float) -> float:
        """Wait up to ``bound`` seconds for Backstage to answer; how long that took."""
        started = time.monotonic()
        wait_until("Backstage to answer through the Ingress", self.answer, bound, 1,
                   until=lambda answer: answer == "answers")
        return time.monotonic() - started

    # Kubernetes objects
    def secret(self, name: str) -> dict[str, str]:
        return {key: value.decode() for key, value in self.kubectl.secret(name).items()}

    def certificate(self, name: str) -> x509.Certificate:
        return self.kubectl.certificate(name)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        """Pods of a selector that are not on their way out."""
        return self.kubectl.pods(selector)

    def postgres_pod(self) -> dict[str, Any]:
        pods = self.pods(POSTGRES_SELECTOR)
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        return pods[0]

    def rollout_done(self, kind: str, name: str) -> bool:
        obj = self.get(kind, name)
        status, replicas = obj.get("status", {}), obj["spec"]["replicas"]
        done = (status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
                and status.get("readyReplicas") == replicas and status.get("updatedReplicas") == replicas)
        if kind == "deployment":
            done = done and status.get("replicas") == replicas
        else:
            done = done and status.get("currentRevision") == status.get("updateRevision")
        return done

    # PostgreSQL, as the backend reaches it
    def query(self, sql: Optional[str] = None, database: Optional[str] = None) -> dict[str, Any]:
        """Log in with the client certificate (verified TLS) and run ``sql``."""
        return postgres_query(self.kubectl, sql, database)

    def presented_serial(self) -> int:
        return presented_serial(self.kubectl)

    def backend_client_serials(self) -> set[int]:
        """Serials of the client certificates the running backend pods connect with (pg_stat_ssl)."""
        ips = {p["status"].get("podIP") for p in self.pods(BACKEND_SELECTOR)}
        rows = client_certificate_connections(self.kubectl)
        return {int(row[1]) for row in rows if row[0] in ips and row[1] is not None}


# -- writes -------------------------------------------------------------------------------------

@dataclass
class Write:
    n: int
    target: str
    sent: float
    answered: float = 0.0
    status: int = 0
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Writer:
    """Writes catalog locations through the Ingress, one at a time, every ``interval`` seconds."""

    deployment: Deployment
    interval: float = 0.15
    timeout: float = 5.0
    prefix: str = field(default_factory=lambda: f"https://faults.invalid/{uuid.uuid4().hex[:12]}")
    writes: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            write = Write(len(self.writes), f"{self.prefix}/{len(self.writes)}/catalog-info.yaml", time.monotonic())
            try:
                write.status = self.deployment.add_location(write.target, timeout=self.timeout)
            except (OSError, ValueError) as exc:
                write.error = type(exc).__name__ + ": " + str(exc)[:120]
            write.answered = time.monotonic()
            self.writes.append(write)
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> "Writer":
        self.deployment.token()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def acknowledged(self) -> list[str]:
        return [w.target for w in self.writes if w.acknowledged]

    def acknowledged_in_a_row_since(self, since: float) -> int:
        count = 0
        for write in reversed(list(self.writes)):
            if write.sent < since or not write.acknowledged:
                break
            count += 1
        return count


def write_rows(deployment: Deployment, count: int = 5) -> list[str]:
    """Write ``count`` catalog locations, each acknowledged; their targets."""
    prefix = f"https://faults.invalid/{uuid.uuid4().hex[:12]}"
    targets = [f"{prefix}/{n}/catalog-info.yaml" for n in range(count)]
    for target in targets:
        status = deployment.add_location(target, timeout=30)
        assert status == 201, f"writing {target}: HTTP {status}"
    return targets


def assert_rows_present(deployment: Deployment, targets: list[str]) -> None:
    missing = sorted(set(targets) - deployment.location_targets())
    assert not missing, f"{len(missing)} of {len(targets)} acknowledged writes are gone, e.g. {missing[:5]}"


# -- certificates -------------------------------------------------------------------------------

def _verify_signature(issuer: x509.Certificate, cert: x509.Certificate) -> None:
    key = issuer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    else:
        cert.verify_directly_issued_by(issuer)


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ca_snapshot(deployment: Deployment) -> dict[str, Any]:
    secret = deployment.get("secret", CA_SECRET)
    return {"uid": secret["metadata"]["uid"], "resourceVersion": secret["metadata"]["resourceVersion"],
            "data": secret["data"]}


def assert_leaf_secrets_consistent(deployment: Deployment) -> dict[str, int]:
    """Each leaf Secret holds a key pair that matches, signed by the CA in the CA Secret, with the
    CA's certificate as ca.crt, valid now, with the right CN and SANs. Returns the serials."""
    ca = x509.load_pem_x509_certificate(deployment.secret(CA_SECRET)["tls.crt"].encode())
    now = datetime.datetime.now(datetime.timezone.utc)
    expected = {
        SERVER_SECRET: ("postgres", {"postgres", f"postgres.{deployment.namespace}",
                                     f"postgres.{deployment.namespace}.svc",
                                     f"postgres.{deployment.namespace}.svc.cluster.local"}),
        CLIENT_SECRET: (DATABASE_USER, None),
    }
    serials = {}
    for name, (common_name, dns_names) in expected.items():
        data = deployment.secret(name)
        cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
        key = serialization.load_pem_private_key(data["tls.key"].encode(), password=None)
        assert _public_bytes(key.public_key()) == _public_bytes(cert.public_key()), f"{name}: tls.key does not match tls.crt"
        assert x509.load_pem_x509_certificate(data["ca.crt"].encode()) == ca, f"{name}: ca.crt is not the CA"
        assert cert.issuer == ca.subject, name
        _verify_signature(ca, cert)
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc, name
        cns = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        assert cns == [common_name], f"{name}: CN {cns}"
        if dns_names is not None:
            sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                       .get_values_for_type(x509.DNSName))
            assert dns_names <= sans, f"{name}: SANs {sans}"
        serials[name] = cert.serial_number
    return serials


def assert_workloads_use_the_secrets(deployment: Deployment, serials: dict[str, int]) -> None:
    """PostgreSQL presents the server Secret's certificate; the backend connects with the client
    Secret's (the serial the rotation records on the Deployment, and pg_stat_ssl)."""
    assert deployment.presented_serial() == serials[SERVER_SECRET]
    backend = deployment.get("deployment", BACKEND)
    assert backend["metadata"].get("annotations", {}).get(SERIAL_ANNOTATION) == str(serials[CLIENT_SECRET])
    assert deployment.backend_client_serials() == {serials[CLIENT_SECRET]}


# -- artifacts ----------------------------------------------------------------------------------

def write_artifact(name: str, content: Any) -> Path:
    path = artifacts_dir("faults") / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2) + "\n")
    return path


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """Backstage on the shared test cluster (the instance TESTCLUSTER_INSTANCE names, 0 without it)
    in a namespace of the fault tests' own, deployed from nothing. BACKSTAGE_K8S_FAULTS_REUSE=1
    keeps an existing deployment (and leaves it in place afterwards) for quicker reruns."""
    reuse = os.environ.get("BACKSTAGE_K8S_FAULTS_REUSE") == "1"
    deployment = Deployment(Cluster())
    if not reuse:
        deployment.delete_namespace()
    deployment.deploy("deploy")
    deployment.wait_until_answering(300)
    yield deployment
    if not reuse:
        deployment.delete_namespace()
