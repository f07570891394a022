"""Acceptance tests: the test cluster behaves like a real Kubernetes node (microk8s-alike)."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from testcluster import CLUSTER_DIR, Cluster, wait_until

WEB_PORT = 8080


def pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": name, "image": image, "imagePullPolicy": "Never", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def pod_phase(cluster: Cluster, ns: str, name: str) -> str:
    result = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout


def run_to_completion(cluster: Cluster, ns: str, manifest: dict[str, Any], timeout: float = 120) -> str:
    """Create a pod, wait until it finishes, return its log; fail if it did not succeed."""
    name = manifest["metadata"]["name"]
    cluster.apply(manifest, ns)
    phase = wait_until(f"pod {name} to finish",
                       lambda: (p := pod_phase(cluster, ns, name)) in ("Succeeded", "Failed") and p, timeout)
    logs = cluster.kubectl("logs", name, "-n", ns).stdout
    assert phase == "Succeeded", f"pod {name} {phase}: {logs}"
    return logs


@pytest.fixture(scope="module")
def web_image(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A web server image built from files, imported from its OCI archive; (reference, page token)."""
    token = secrets.token_hex(8)
    tag = f"t{token}"
    root = tmp_path_factory.mktemp("web")
    (root / "www" / "routed").mkdir(parents=True)
    (root / "www" / "index.html").write_text(f"hello {token}\n")
    (root / "www" / "routed" / "index.html").write_text(f"routed {token}\n")
    archive = root / "web.tar"
    subprocess.run([str(CLUSTER_DIR / "oci-image"), str(archive), tag, "--busybox", "--add", f"{root / 'www'}=/www",
                    "--", "/bin/httpd", "-f", "-v", "-p", str(WEB_PORT), "-h", "/www"],
                   check=True, capture_output=True)
    cluster.ctr("images", "import", "--base-name", "localhost/acceptance/web", str(archive))
    return f"localhost/acceptance/web:{tag}", token


@pytest.fixture
def web(cluster: Cluster, namespace: str, web_image: tuple[str, str]) -> tuple[str, str]:
    """A Deployment + Service `web` running the imported image; (namespace, token)."""
    image, token = web_image
    labels = {"app": "web"}
    cluster.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                      "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                      "ports": [{"containerPort": WEB_PORT}],
                      "readinessProbe": {"httpGet": {"path": "/", "port": WEB_PORT}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": WEB_PORT}]}},
    ], namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s", timeout=130)
    return namespace, token


def test_the_node_is_ready_and_runs_the_built_kubernetes(cluster: Cluster) -> None:
    nodes = cluster.get("nodes")["items"]
    assert len(nodes) == 1
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    kube_mod = (CLUSTER_DIR / "go" / "kube" / "go.mod").read_text()
    pinned = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", kube_mod, re.MULTILINE)[1]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == pinned
    assert version["serverVersion"]["gitVersion"] == pinned
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_a_deployment_of_an_image_imported_from_an_oci_archive_becomes_ready(
        cluster: Cluster, web: tuple[str, str]) -> None:
    namespace = web[0]
    deployment = cluster.get("deployment", "web", "-n", namespace)
    assert deployment["status"].get("readyReplicas") == 1


def test_a_pod_reaches_another_pod_through_a_service_by_its_dns_name(
        cluster: Cluster, web: tuple[str, str], busybox_image: str) -> None:
    namespace, token = web
    url = f"http://web.{namespace}.svc.cluster.local/"
    logs = run_to_completion(cluster, namespace, pod("client", busybox_image, ["timeout", "10", "wget", "-q", "-O-", url]))
    assert logs.strip() == f"hello {token}"


def test_an_unknown_service_name_does_not_resolve(cluster: Cluster, namespace: str, busybox_image: str) -> None:
    name = f"missing.{namespace}.svc.cluster.local"
    cluster.apply(pod("lookup", busybox_image, ["nslookup", name]), namespace)
    wait_until("the lookup to finish", lambda: pod_phase(cluster, namespace, "lookup") in ("Succeeded", "Failed"))
    assert pod_phase(cluster, namespace, "lookup") == "Failed"


def test_a_pvc_binds_and_its_data_survives_pod_deletion(cluster: Cluster, namespace: str, busybox_image: str) -> None:
    token = secrets.token_hex(8)
    cluster.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}},
                            "storageClassName": cluster.env["TESTCLUSTER_STORAGE_CLASS"]}}, namespace)
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
              "container": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}}
    run_to_completion(cluster, namespace, pod("writer", busybox_image,
                                              ["sh", "-c", f"echo {token} > /data/token && sync"], **volume))
    claim = cluster.get("pvc", "data", "-n", namespace)
    assert claim["status"]["phase"] == "Bound"
    cluster.kubectl("delete", "pod", "writer", "-n", namespace, "--wait=true")
    logs = run_to_completion(cluster, namespace, pod("reader", busybox_image, ["cat", "/data/token"], **volume))
    assert logs.strip() == token


def test_a_cronjob_spawns_a_job_that_completes(cluster: Cluster, namespace: str, busybox_image: str) -> None:
    cluster.apply({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
                   "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 3,
                            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "tick", "image": busybox_image, "imagePullPolicy": "Never",
                                                "command": ["sh", "-c", "echo tick"]}]}}}}}}, namespace)

    def completed_job() -> str | None:
        for job in cluster.get("jobs", "-n", namespace)["items"]:
            owners = [o["name"] for o in job["metadata"].get("ownerReferences", [])]
            if "tick" in owners and job["status"].get("succeeded", 0) >= 1:
                return job["metadata"]["name"]
        return None

    job = wait_until("a Job of the CronJob to complete", completed_job, timeout=150, interval=3)
    logs = cluster.kubectl("logs", f"job/{job}", "-n", namespace).stdout
    assert logs.strip() == "tick"


RESTRICTED_OK = {"securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                 "container": {"securityContext": {"allowPrivilegeEscalation": False,
                                                   "capabilities": {"drop": ["ALL"]}}}}


@pytest.mark.parametrize(("spec", "allowed"), [
    pytest.param(RESTRICTED_OK, True, id="restricted-compliant-pod-is-admitted"),
    pytest.param({"container": {"securityContext": {"privileged": True}}}, False, id="privileged-pod-is-rejected"),
    pytest.param({}, False, id="pod-without-security-context-is-rejected"),
    pytest.param({"hostNetwork": True, **RESTRICTED_OK}, False, id="host-network-pod-is-rejected"),
])
def test_pod_security_restricted_is_enforced_in_a_labelled_namespace(
        cluster: Cluster, namespace: str, busybox_image: str, spec: dict[str, Any], allowed: bool) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    manifest = pod("probe", busybox_image, ["true"], **json.loads(json.dumps(spec)))
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    if allowed:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        assert "violates PodSecurity" in result.stderr


@pytest.mark.parametrize(("verb", "resource", "where", "expected"), [
    pytest.param("get", "pods", "own", "yes", id="granted-verb"),
    pytest.param("list", "pods", "own", "yes", id="granted-list"),
    pytest.param("delete", "pods", "own", "no", id="verb-not-granted"),
    pytest.param("get", "secrets", "own", "no", id="resource-not-granted"),
    pytest.param("get", "pods", "kube-system", "no", id="other-namespace"),
])
def test_auth_can_i_answers_per_rbac(cluster: Cluster, namespace: str,
                                     verb: str, resource: str, where: str, expected: str) -> None:
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
    ], namespace)
    target = namespace if where == "own" else where
    result = cluster.kubectl("auth", "can-i", verb, resource, "-n", target,
                             "--as", f"system:serviceaccount:{namespace}:reader", check=False)
    assert result.stdout.strip() == expected


def test_a_networkpolicy_is_accepted(cluster: Cluster, namespace: str) -> None:
    cluster.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}, namespace)
    assert cluster.get("networkpolicy", "deny-all", "-n", namespace)["spec"]["policyTypes"] == ["Ingress"]


def test_an_ingress_routes_a_path_to_a_service_from_the_host(cluster: Cluster, web: tuple[str, str]) -> None:
    namespace, token = web
    base = cluster.env["TESTCLUSTER_INGRESS_URL"]
    path = "/routed"
    host = f"{namespace}.testcluster.localhost"
    cluster.apply({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                   "spec": {"ingressClassName": cluster.env["TESTCLUSTER_INGRESS_CLASS"], "rules": [{
                       "host": host,
                       "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": {
                           "service": {"name": "web", "port": {"number": 80}}}}]}}]}}, namespace)

    def fetch(p: str) -> tuple[int, str]:
        request = urllib.request.Request(base + p, headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)

    status, body = wait_until("the Ingress to route", lambda: (r := fetch(path + "/"))[0] == 200 and r, timeout=60)
    assert body.strip() == f"routed {token}"
    # Another Ingress without a host (a deployment under test) may catch other paths: it must
    # not be this Service that answers them.
    status, body = fetch("/not-routed/")
    assert token not in body, (status, body[:200])
