"""The offline-built images as pods of the test cluster, in a namespace that
enforces PodSecurity ``restricted`` (runAsNonRoot, no privilege escalation, all
capabilities dropped, seccomp RuntimeDefault) with read-only root filesystems.

Needs the test cluster (``tests/cluster/cluster up``); skipped, saying so, when
it is not up. The archives are imported with a plain ``ctr images import``:
the names they carry are the ones the pods ask for.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import Cluster, wait_until  # noqa: E402  (tests/lib)

# images: the session fixture that builds every image, shared with test_images.
from test_images import PG_HBA, ROTATION_ENV, Image, images, make_pki  # noqa: E402,F401  pylint: disable=unused-import

pytestmark = pytest.mark.skipif(not Cluster().is_up(), reason="the test cluster is not up (tests/cluster/cluster up)")

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def pod_security(uid: int) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    spec = {"name": name, "image": image, "imagePullPolicy": "Never",
            "securityContext": RESTRICTED_CONTAINER}
    spec.update(extra)
    spec["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *extra.get("volumeMounts", [])]
    return spec


def pod(name: str, uid: int, containers: list[dict[str, Any]],
        volumes: list[dict[str, Any]] = (), **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
            "spec": {"securityContext": pod_security(uid), "containers": containers,
                     "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
                     "automountServiceAccountToken": False, **spec}}


def service(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app.kubernetes.io/name": name},
                     "ports": [{"port": port, "targetPort": port}]}}


def secret(name: str, files: dict[str, Path]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {k: v.read_text() for k, v in files.items()}}


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 300) -> None:
    def ready() -> bool:
        p = cluster.get("pod", name, "-n", namespace)
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p.get("status", {}).get("conditions", []))

    def described() -> str:
        described = cluster.kubectl("describe", "pod", name, "-n", namespace, check=False).stdout
        logs = cluster.kubectl("logs", name, "-n", namespace, "--all-containers", check=False)
        return f"{described[-3000:]}\n{logs.stdout[-5000:]}"

    wait_until(f"pod {name} to be Ready", ready, timeout=timeout, interval=2, diagnostics=described)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture(scope="module")
def imported(cluster: Cluster, images: dict[str, Image]) -> dict[str, str]:
    """Import every archive; the pods use the references the build printed."""
    for image in images.values():
        cluster.ctr("images", "import", str(image.archive))
    listed = cluster.ctr("images", "ls", "-q").stdout.split()
    for image in images.values():
        assert f"docker.io/{image.reference}" in listed, listed
    return {name: image.reference for name, image in images.items()}


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"images-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def pki(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"),
                    ["postgres", f"postgres.{namespace}.svc", f"postgres.{namespace}.svc.cluster.local"],
                    999, "postgres", 1000)


@pytest.fixture(scope="module")
def postgres(cluster: Cluster, namespace: str, imported: dict[str, str],
             pki: dict[str, Path]) -> str:
    """PostgreSQL 15 as the role runs it: TLS only, `cert` auth, key from a
    Secret with mode 0640 and fsGroup 999, PGDATA under a volume."""
    cluster.apply([
        secret("postgres-tls", {"ca.crt": pki["ca"], "tls.crt": pki["server_cert"],
                                "tls.key": pki["server_key"]}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "postgres-hba"},
         "data": {"pg_hba.conf": PG_HBA}},
        service("postgres", 5432),
        pod("postgres", 999, [container(
            "postgres", imported["postgres"],
            args=["postgres", "-c", "ssl=on",
                  "-c", "ssl_cert_file=/etc/postgresql-tls/tls.crt",
                  "-c", "ssl_key_file=/etc/postgresql-tls/tls.key",
                  "-c", "ssl_ca_file=/etc/postgresql-tls/ca.crt",
                  "-c", "hba_file=/etc/postgresql-config/pg_hba.conf"],
            env=[{"name": "POSTGRES_PASSWORD", "value": secrets.token_hex(16)},
                 {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
            ports=[{"containerPort": 5432}],
            readinessProbe={"exec": {"command": ["pg_isready", "-q", "-h", "/var/run/postgresql"]},
                            "periodSeconds": 2},
            volumeMounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                          {"name": "run", "mountPath": "/var/run/postgresql"},
                          {"name": "tls", "mountPath": "/etc/postgresql-tls", "readOnly": True},
                          {"name": "hba", "mountPath": "/etc/postgresql-config", "readOnly": True}])],
            volumes=[{"name": "data", "emptyDir": {}}, {"name": "run", "emptyDir": {}},
                     {"name": "tls", "secret": {"secretName": "postgres-tls", "defaultMode": 0o640}},
                     {"name": "hba", "configMap": {"name": "postgres-hba"}}]),
    ], namespace)
    wait_ready(cluster, namespace, "postgres")
    # Ready also during the entrypoint's socket-only init server: wait for the real one.
    wait_until("postgres to finish its set-up", lambda: "ready for start up" in cluster.kubectl(
        "logs", "postgres", "-n", namespace).stdout and cluster.kubectl(
        "exec", "postgres", "-n", namespace, "--", "pg_isready", "-q", check=False).returncode == 0)
    return "postgres"


def test_postgres_pod_initialises_and_accepts_a_socket_connection(
        cluster: Cluster, namespace: str, postgres: str) -> None:
    result = cluster.kubectl("exec", postgres, "-n", namespace, "--", "psql", "-U", "postgres",
                             "-Atc", "SELECT current_user, current_setting('ssl'), "
                                     "current_setting('data_directory')")
    assert result.stdout.strip() == "postgres|on|/var/lib/postgresql/data/pgdata"
    assert cluster.kubectl("exec", postgres, "-n", namespace, "--", "id", "-u").stdout.strip() == "999"


def test_backend_pod_becomes_ready_on_postgres_with_a_client_certificate(
        cluster: Cluster, namespace: str, imported: dict[str, str], pki: dict[str, Path],
        postgres: str) -> None:
    config = {"backend": {
        "baseUrl": "http://backend:7007",
        "database": {"client": "pg", "connection": {
            "host": "postgres", "port": 5432, "user": "postgres",
            "ssl": {"rejectUnauthorized": True,
                    "ca": {"$file": "/etc/backstage-tls/ca.crt"},
                    "cert": {"$file": "/etc/backstage-tls/tls.crt"},
                    "key": {"$file": "/etc/backstage-tls/tls.key"}}}}}}
    probe = {"httpGet": {"path": "/.backstage/health/v1/readiness", "port": 7007},
             "periodSeconds": 3, "failureThreshold": 100}
    cluster.apply([
        secret("backend-tls", {"ca.crt": pki["ca"], "tls.crt": pki["client_cert"],
                               "tls.key": pki["client_key"]}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-config"},
         "data": {"app-config.k8s.yaml": json.dumps(config)}},
        service("backend", 7007),
        pod("backend", 1000, [container(
            "backend", imported["backstage-backend"],
            args=["node", "packages/backend", "--config", "app-config.yaml",
                  "--config", "app-config.production.yaml",
                  "--config", "/etc/backstage/app-config.k8s.yaml"],
            ports=[{"containerPort": 7007}], readinessProbe=probe,
            volumeMounts=[{"name": "config", "mountPath": "/etc/backstage", "readOnly": True},
                          {"name": "tls", "mountPath": "/etc/backstage-tls", "readOnly": True}])],
            volumes=[{"name": "config", "configMap": {"name": "backend-config"}},
                     {"name": "tls", "secret": {"secretName": "backend-tls", "defaultMode": 0o640}}]),
    ], namespace)
    wait_ready(cluster, namespace, "backend", timeout=420)
    databases = cluster.kubectl("exec", postgres, "-n", namespace, "--", "psql", "-U", "postgres",
                                "-Atc", "SELECT datname FROM pg_database").stdout.split()
    assert "backstage_plugin_catalog" in databases


@pytest.fixture(scope="module")
def client(cluster: Cluster, namespace: str) -> str:
    """A busybox pod to make HTTP requests from inside the namespace."""
    image = cluster.env["TESTCLUSTER_BUSYBOX_IMAGE"]
    cluster.apply(pod("client", 65534, [container("client", image,
                                                  command=["sleep", "3600"])]), namespace)
    wait_ready(cluster, namespace, "client")
    return "client"


def fetch(cluster: Cluster, namespace: str, client: str, url: str) -> tuple[str, str]:
    """(response headers, body) as busybox wget -S prints them."""
    result = cluster.kubectl("exec", client, "-n", namespace, "--", "wget", "-S", "-q", "-O", "-",
                             url, check=False)
    return result.stderr, result.stdout


def test_frontend_pod_serves_index_and_hashed_assets_with_their_cache_headers(
        cluster: Cluster, namespace: str, imported: dict[str, str], client: str) -> None:
    cluster.apply([
        service("frontend", 8080),
        pod("frontend", 101, [container(
            "frontend", imported["backstage-frontend"],
            env=[{"name": "APP_BASE_URL", "value": "https://backstage.images.test"},
                 {"name": "BACKEND_BASE_URL", "value": "https://backstage.images.test"}],
            ports=[{"containerPort": 8080}],
            readinessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2})]),
    ], namespace)
    wait_ready(cluster, namespace, "frontend")
    headers, body = fetch(cluster, namespace, client, "http://frontend:8080/catalog")
    assert "200 OK" in headers and "Cache-Control: no-cache" in headers, headers
    assert "https://backstage.images.test" in body and 'type="backstage.io/config"' in body

    asset = re.findall(r'src="(/static/[^"]+\.js)"', body)[0]
    headers, _body = fetch(cluster, namespace, client, f"http://frontend:8080{asset}")
    assert "200 OK" in headers, headers
    assert "Cache-Control: public, max-age=31536000, immutable" in headers, headers


def test_execution_environment_pod_reads_secrets_with_its_service_account(
        cluster: Cluster, namespace: str, imported: dict[str, str], postgres: str) -> None:
    """In-cluster config from the service account token; the RBAC the job
    gets is all it can use."""
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "rotation"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "rotation"},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["postgres-tls"],
                    "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "rotation"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rotation"},
         "subjects": [{"kind": "ServiceAccount", "name": "rotation", "namespace": namespace}]},
    ], namespace)
    script = (f"ansible-playbook --syntax-check backstage.k8s.rotate && "
              f"ansible localhost -m kubernetes.core.k8s_info "
              f"-a 'kind=Secret namespace={namespace} name=postgres-tls' && "
              f"ansible localhost -m kubernetes.core.k8s_info "
              f"-a 'kind=Secret namespace={namespace} name=backend-tls' ; true")
    # Arguments to the image's entry point, as the CronJob gives them.
    manifest = pod("rotation", 1000, [container("rotation", imported["ee"],
                                                args=["sh", "-c", script],
                                                env=[{"name": k, "value": v} for k, v in ROTATION_ENV.items()])],
                   restartPolicy="Never", serviceAccountName="rotation")
    manifest["spec"]["automountServiceAccountToken"] = True
    cluster.apply(manifest, namespace)
    wait_until("the rotation pod to finish", lambda: cluster.get("pod", "rotation", "-n", namespace)
               .get("status", {}).get("phase") in ("Succeeded", "Failed"), timeout=300, interval=2)
    logs = cluster.kubectl("logs", "rotation", "-n", namespace).stdout
    assert "playbooks/rotate.yml" in logs, logs
    assert '"name": "postgres-tls"' in logs, logs
    assert "forbidden" in logs.lower(), logs
