"""Certificate rotation on a real cluster: the CronJob's Jobs renew the PostgreSQL server and
Backstage client certificates with least privilege, PostgreSQL loads its new certificate without
a restart, the backend rolls onto its new one while Backstage keeps serving, the client
certificate it replaced is refused right after, a run with nothing due changes nothing, and an
interrupted rotation is finished by the next run.

The tests run in order and share the deployment converge made (namespace backstage-rotation).
Rotation now is forced with rotate.yml's cert_rotation_force (the certificates are fresh)."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509
from ansible_collections.backstage.k8s.plugins.module_utils._postgres_tls import PostgresTlsError

from conftest import BACKEND, BACKEND_SELECTOR, CRONJOB, POSTGRES_SELECTOR, Certificates, Rotate
from testcluster import CA_SECRET, CLIENT_SECRET, SERVER_SECRET, Kubectl, postgres_query, wait_until

SERIAL_ANNOTATION = "backstage.k8s/postgres-client-certificate-serial"
SERVER_SERIAL_ANNOTATION = "backstage.k8s/postgres-server-certificate-serial"
ROTATION_SA = CRONJOB


def can_i(kubectl: Kubectl, namespace: str, service_account: str, verb: str, resource: str) -> bool:
    out = kubectl("auth", "can-i", verb, resource, f"--as=system:serviceaccount:{namespace}:{service_account}",
                  check=False).strip()
    return out == "yes"


def state(k8s: Callable[..., Any], certificates: Certificates) -> dict[str, Any]:
    """What a rotation may change: Secrets, workloads, pods."""
    backend = k8s("deployment", BACKEND)
    postgres_pod = k8s("pods", "-l", POSTGRES_SELECTOR)["items"][0]
    return {
        "server_serial": certificates.in_secret(SERVER_SECRET).serial_number,
        "client_serial": certificates.in_secret(CLIENT_SECRET).serial_number,
        "secret_versions": {name: k8s("secret", name)["metadata"]["resourceVersion"]
                            for name in (SERVER_SECRET, CLIENT_SECRET)},
        "backend_generation": backend["metadata"]["generation"],
        "backend_recorded_serial": backend["metadata"].get("annotations", {}).get(SERIAL_ANNOTATION),
        # Pods already deleted by a finished rollout may still be draining (preStop): not serving pods.
        "backend_pods": sorted(p["metadata"]["uid"] for p in k8s("pods", "-l", BACKEND_SELECTOR)["items"]
                               if p["metadata"].get("deletionTimestamp") is None),
        "postgres_generation": k8s("statefulset", "postgres")["metadata"]["generation"],
        "postgres_recorded_serial": k8s("statefulset", "postgres")["metadata"].get("annotations", {})
        .get(SERVER_SERIAL_ANNOTATION),
        "postgres_pod": postgres_pod["metadata"]["uid"],
        "postgres_restarts": postgres_pod["status"]["containerStatuses"][0]["restartCount"],
    }


def backend_ready(k8s: Callable[..., Any]) -> None:
    backend = k8s("deployment", BACKEND)
    replicas = backend["spec"]["replicas"]
    assert backend["status"].get("readyReplicas") == replicas, backend["status"]
    assert backend["status"].get("updatedReplicas") == replicas, backend["status"]
    pods = k8s("pods", "-l", BACKEND_SELECTOR)["items"]
    running = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
    assert len(running) == replicas
    for pod in running:
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), pod["metadata"]["name"]


def catalog_serves(probe_factory: Callable[[], Any]) -> None:
    probe = probe_factory().start()
    time.sleep(1)
    result = probe.stop()
    assert result["requests"] > 0 and result["failed"] == 0, result


def backend_connections_use(certificates: Certificates, k8s: Callable[..., Any], serial: int) -> None:
    """PostgreSQL's own view (pg_stat_ssl) of the client certificates the backend pods connect with."""
    ips = {p["status"]["podIP"] for p in k8s("pods", "-l", BACKEND_SELECTOR)["items"]
           if p["metadata"].get("deletionTimestamp") is None}
    rows = certificates.client_connections()
    backend_rows = [row for row in rows if row[0] in ips]
    assert backend_rows, f"no connection from the backend pods {sorted(ips)} in pg_stat_ssl: {rows}"
    assert {int(row[1]) for row in backend_rows} == {serial}, backend_rows


# -- RBAC -------------------------------------------------------------------------------------

ALLOWED = [
    ("get", f"secret/{CA_SECRET}"),
    # A CA rollover renews the CA.
    ("patch", f"secret/{CA_SECRET}"),
    ("get", f"secret/{SERVER_SECRET}"),
    ("patch", f"secret/{SERVER_SECRET}"),
    ("get", f"secret/{CLIENT_SECRET}"),
    ("patch", f"secret/{CLIENT_SECRET}"),
    ("get", "statefulset/postgres"),
    ("patch", "statefulset/postgres"),
    ("get", f"deployment/{BACKEND}"),
    ("patch", f"deployment/{BACKEND}"),
]
DENIED = [
    ("get", "secret/postgres-superuser"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("update", f"secret/{CA_SECRET}"),
    ("delete", f"secret/{CA_SECRET}"),
    ("delete", f"secret/{SERVER_SECRET}"),
    ("delete", f"secret/{CLIENT_SECRET}"),
    ("delete", "statefulset/postgres"),
    ("delete", f"deployment/{BACKEND}"),
    ("patch", "deployment/backstage-frontend"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("list", "pods"),
    ("delete", f"cronjob/{CRONJOB}"),
    ("create", "rolebindings"),
    ("get", "configmaps"),
    ("deletecollection", "secrets"),
]


@pytest.mark.parametrize(("verb", "resource"), ALLOWED, ids=[f"{v} {r}" for v, r in ALLOWED])
def test_rotation_job_may_do_what_rotation_needs(kubectl: Kubectl, namespace: str, verb: str, resource: str) -> None:
    assert can_i(kubectl, namespace, ROTATION_SA, verb, resource)


@pytest.mark.parametrize(("verb", "resource"), DENIED, ids=[f"{v} {r}" for v, r in DENIED])
def test_rotation_job_cannot_read_other_secrets_or_delete_anything(
        kubectl: Kubectl, namespace: str, verb: str, resource: str) -> None:
    assert not can_i(kubectl, namespace, ROTATION_SA, verb, resource)


def test_only_the_rotation_service_account_can_read_the_ca_key(
        kubectl: Kubectl, k8s: Callable[..., Any], namespace: str) -> None:
    backend_sa = k8s("deployment", BACKEND)["spec"]["template"]["spec"].get("serviceAccountName", "default")
    accounts = {a["metadata"]["name"] for a in k8s("serviceaccounts")["items"]} | {backend_sa}
    readers = {a for a in accounts if can_i(kubectl, namespace, a, "get", f"secret/{CA_SECRET}")}
    assert readers == {ROTATION_SA}
    assert not can_i(kubectl, namespace, backend_sa, "get", f"secret/{CLIENT_SECRET}")


# -- admission: what the rotation ServiceAccount's patches may change ----------------------------
# Real requests as the ServiceAccount (impersonation: admission sees its user name), sent as server
# dry runs so that a request the policy fails to stop changes nothing. RBAC allows every one of
# them (patch on these objects): a refusal can only come from the admission policy.

WORKLOADS = [f"deployment/{BACKEND}", "statefulset/postgres"]
SUPERUSER_SECRET = "postgres-superuser"
WORKLOAD_PATCHES_DENIED = {
    "image": [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "attacker/image:1"}],
    "command": [{"op": "add", "path": "/spec/template/spec/containers/0/command", "value": ["sh", "-c", "id"]}],
    "volumes": [{"op": "add", "path": "/spec/template/spec/volumes/-",
                 "value": {"name": "superuser", "secret": {"secretName": SUPERUSER_SECRET}}}],
    "serviceAccountName": [{"op": "add", "path": "/spec/template/spec/serviceAccountName", "value": ROTATION_SA}],
    "automountServiceAccountToken": [{"op": "add", "path": "/spec/template/spec/automountServiceAccountToken",
                                      "value": True}],
    "replicas": [{"op": "replace", "path": "/spec/replicas", "value": 0}],
    "pod template labels": [{"op": "add", "path": "/spec/template/metadata/labels/extra", "value": "x"}],
    "another pod template annotation": [{"op": "add", "path": "/spec/template/metadata/annotations",
                                         "value": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                                                   "backstage.k8s/other": "x"}}],
    "labels": [{"op": "add", "path": "/metadata/labels/extra", "value": "x"}],
    "owner": [{"op": "add", "path": "/metadata/ownerReferences",
               "value": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone",
                          "uid": "00000000-0000-0000-0000-000000000000"}]}],
}
WORKLOAD_CASES = [(w, name) for w in WORKLOADS for name in WORKLOAD_PATCHES_DENIED]


def patch_as_rotation(kubectl: Kubectl, namespace: str, target: str, patch: Any,
                      patch_type: str = "json") -> Any:
    return kubectl.run("patch", target, f"--type={patch_type}", "-p", json.dumps(patch), "--dry-run=server",
                       f"--as=system:serviceaccount:{namespace}:{ROTATION_SA}", check=False)


def refused_by_the_policy(result: Any, namespace: str) -> bool:
    return result.returncode != 0 and f"ValidatingAdmissionPolicy '{ROTATION_SA}-{namespace}'" in result.stderr


@pytest.mark.parametrize(("target", "change"), WORKLOAD_CASES, ids=[f"{t} {c}" for t, c in WORKLOAD_CASES])
def test_rotation_account_cannot_change_a_workload_beyond_a_restart(
        kubectl: Kubectl, namespace: str, target: str, change: str) -> None:
    result = patch_as_rotation(kubectl, namespace, target, WORKLOAD_PATCHES_DENIED[change])
    assert refused_by_the_policy(result, namespace), (result.returncode, result.stdout, result.stderr)


@pytest.mark.parametrize("target", WORKLOADS)
def test_rotation_account_may_restart_a_workload(kubectl: Kubectl, namespace: str, target: str) -> None:
    restart = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": datetime.datetime.now(datetime.timezone.utc).isoformat()}}}}}
    result = patch_as_rotation(kubectl, namespace, target, restart, "strategic")
    assert result.returncode == 0, result.stderr


RECORDS = {f"deployment/{BACKEND}": SERIAL_ANNOTATION, "statefulset/postgres": SERVER_SERIAL_ANNOTATION}


@pytest.mark.parametrize("target", list(RECORDS))
def test_rotation_account_may_record_the_serial_a_workload_runs_with(kubectl: Kubectl, namespace: str,
                                                                     target: str) -> None:
    result = patch_as_rotation(kubectl, namespace, target, {"metadata": {"annotations": {RECORDS[target]: "1234"}}},
                               "merge")
    assert result.returncode == 0, result.stderr


def test_the_deploying_user_is_not_constrained(kubectl: Kubectl) -> None:
    result = kubectl.run("patch", f"deployment/{BACKEND}", "--type=json", "--dry-run=server",
                         "-p", json.dumps(WORKLOAD_PATCHES_DENIED["image"]), check=False)
    assert result.returncode == 0, result.stderr


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SECRET_PATCHES_DENIED = {
    "another key": {"data": {"extra": b64(b"x")}},
    "the previous CA": {"data": {"previous.crt": b64(b"-----BEGIN CERTIFICATE-----\nnot the CA\n-----END CERTIFICATE-----\n")}},
    "labels": {"metadata": {"labels": {"extra": "x"}}},
}
SECRET_CASES = [(s, c) for s in (SERVER_SECRET, CLIENT_SECRET) for c in SECRET_PATCHES_DENIED]


@pytest.mark.parametrize(("secret", "change"), SECRET_CASES, ids=[f"{s} {c}" for s, c in SECRET_CASES])
def test_rotation_account_cannot_write_anything_but_a_certificate_into_a_leaf_secret(
        kubectl: Kubectl, namespace: str, secret: str, change: str) -> None:
    result = patch_as_rotation(kubectl, namespace, f"secret/{secret}", SECRET_PATCHES_DENIED[change], "merge")
    assert refused_by_the_policy(result, namespace), (result.returncode, result.stderr)


def test_rotation_account_cannot_put_a_crl_into_the_client_secret(kubectl: Kubectl, namespace: str) -> None:
    crl = kubectl.secret(SERVER_SECRET)["ca.crl"]
    result = patch_as_rotation(kubectl, namespace, f"secret/{CLIENT_SECRET}", {"data": {"ca.crl": b64(crl)}}, "merge")
    assert refused_by_the_policy(result, namespace), (result.returncode, result.stderr)


def test_rotation_account_cannot_remove_the_crl(kubectl: Kubectl, namespace: str) -> None:
    result = patch_as_rotation(kubectl, namespace, f"secret/{SERVER_SECRET}", {"data": {"ca.crl": None}}, "merge")
    assert refused_by_the_policy(result, namespace), (result.returncode, result.stderr)


def test_rotation_account_may_write_a_new_crl_into_the_server_secret(kubectl: Kubectl, namespace: str) -> None:
    crl = kubectl.secret(SERVER_SECRET)["ca.crl"] + b"\n"
    result = patch_as_rotation(kubectl, namespace, f"secret/{SERVER_SECRET}", {"data": {"ca.crl": b64(crl)}}, "merge")
    assert result.returncode == 0, result.stderr


def test_rotation_account_may_write_a_new_certificate_and_key(kubectl: Kubectl, namespace: str) -> None:
    other = kubectl.secret(SERVER_SECRET)
    result = patch_as_rotation(kubectl, namespace, f"secret/{CLIENT_SECRET}",
                               {"data": {"tls.crt": b64(other["tls.crt"]), "tls.key": b64(other["tls.key"])}}, "merge")
    assert result.returncode == 0, result.stderr


def test_the_admission_policy_is_named_labelled_and_owned_by_the_namespace(
        kubectl: Kubectl, namespace: str) -> None:
    uid = kubectl.get("namespace", namespace, namespaced=False)["metadata"]["uid"]
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        found = kubectl.get(kind, "-l", f"backstage.k8s/namespace={namespace}", namespaced=False)["items"]
        assert [o["metadata"]["name"] for o in found] == [f"{ROTATION_SA}-{namespace}"], kind
        meta = found[0]["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "backstage.k8s"
        # Deleting the namespace deletes them (garbage collection of dependents).
        assert [(o["kind"], o["uid"]) for o in meta["ownerReferences"]] == [("Namespace", uid)]


# -- egress ---------------------------------------------------------------------------------------
# The test cluster's network (the CNI bridge plugin) does not enforce NetworkPolicy: what is
# checked here is the policy as the API stores it, against the cluster's real addresses, not the
# packets it would drop.

def test_the_rotation_pods_may_reach_only_the_api_server_postgres_and_dns(
        k8s: Callable[..., Any], kubectl: Kubectl) -> None:
    policy = k8s("networkpolicy", f"{CRONJOB}-egress")
    pod_labels = k8s("cronjob", CRONJOB)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    rules = policy["spec"]["egress"]
    postgres, dns, *api_server = rules
    assert postgres == {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted(p["protocol"] for p in dns["ports"]) == ["TCP", "UDP"] and {p["port"] for p in dns["ports"]} == {53}
    service = kubectl.get("service", "kubernetes", "-n", "default", namespaced=False)["spec"]
    endpoints = kubectl.get("endpointslice", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes",
                            namespaced=False)["items"]
    wanted = {(f"{service['clusterIP']}/32", service["ports"][0]["port"])} | {
        (f"{address}/32", port["port"]) for eps in endpoints for ep in eps["endpoints"] for address in ep["addresses"]
        for port in eps["ports"]}
    assert {(r["to"][0]["ipBlock"]["cidr"], r["ports"][0]["port"]) for r in api_server} == wanted
    assert all(len(r["to"]) == 1 and len(r["ports"]) == 1 for r in api_server)


# -- rotations --------------------------------------------------------------------------------

def test_a_run_when_certificates_are_fresh_changes_nothing(
        rotate: Rotate, k8s: Callable[..., Any], certificates: Certificates) -> None:
    before = state(k8s, certificates)
    assert before["backend_recorded_serial"] == str(before["client_serial"]), "converge records the serial"
    assert before["postgres_recorded_serial"] == str(before["server_serial"]), "converge records the serial"
    result = rotate(log_name="fresh-run")
    assert "nothing was due" in result.stdout
    assert "already current" in result.stdout
    assert state(k8s, certificates) == before
    assert certificates.presented_serial() == before["server_serial"]


def test_forced_rotation_renews_both_certificates_and_reloads_and_restarts_without_failed_requests(
        rotate: Rotate, kubectl: Kubectl, k8s: Callable[..., Any], certificates: Certificates,
        probe_factory: Callable[[], Any], artifacts: Path, replaced_client: dict[str, str]) -> None:
    before = state(k8s, certificates)
    replaced_client.update({key: value.decode() for key, value in kubectl.secret(CLIENT_SECRET).items()})
    started = datetime.datetime.now(datetime.timezone.utc)
    probe = probe_factory().start()
    try:
        rotate("-e", "cert_rotation_force=true", log_name="forced-run")
    finally:
        availability = probe.stop()
    (artifacts / "availability-reload.json").write_text(json.dumps(availability, indent=2))
    after = state(k8s, certificates)

    # New serials and dates in both Secrets.
    for name, key in ((SERVER_SECRET, "server_serial"), (CLIENT_SECRET, "client_serial")):
        assert after[key] != before[key], name
        cert = certificates.in_secret(name)
        assert started - datetime.timedelta(minutes=2) <= cert.not_valid_before_utc <= datetime.datetime.now(
            datetime.timezone.utc), name
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=45), name

    # PostgreSQL presents the new certificate; in reload mode without a restart.
    assert certificates.presented_serial() == after["server_serial"]
    assert after["postgres_pod"] == before["postgres_pod"]
    assert after["postgres_restarts"] == before["postgres_restarts"]
    # The StatefulSet records what PostgreSQL presents: site.yml will not restart it for nothing.
    assert after["postgres_recorded_serial"] == str(after["server_serial"])

    # The backend was rolled: every pod is new, Ready, and connects with the new client certificate.
    assert not set(after["backend_pods"]) & set(before["backend_pods"])
    assert after["backend_recorded_serial"] == str(after["client_serial"])
    backend_ready(k8s)
    backend_connections_use(certificates, k8s, after["client_serial"])
    catalog_serves(probe_factory)

    # Requests every 100 ms through the Ingress for the whole rotation.
    assert availability["requests"] > 50, availability
    assert availability["failed"] == 0, availability


def test_the_previous_client_certificate_is_refused_right_after_a_rotation(
        kubectl: Kubectl, replaced_client: dict[str, str]) -> None:
    assert replaced_client, "the forced rotation above keeps the client certificate it replaced"
    with pytest.raises(PostgresTlsError, match="revoked"):
        postgres_query(kubectl, client=replaced_client)


def test_the_new_client_certificate_logs_in_and_the_crl_lists_the_replaced_one(
        kubectl: Kubectl, replaced_client: dict[str, str]) -> None:
    assert postgres_query(kubectl, "SELECT 1")["rows"] == [["1"]]
    replaced = x509.load_pem_x509_certificate(replaced_client["tls.crt"].encode())
    ca = x509.load_pem_x509_certificate(kubectl.secret(CA_SECRET)["tls.crt"])
    crl = x509.load_pem_x509_crl(kubectl.secret(SERVER_SECRET)["ca.crl"])
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(replaced.serial_number) is not None
    server = kubectl.certificate(SERVER_SECRET)
    # Issued with the server certificate, valid as long as it is: renewed with it, never after it.
    assert crl.next_update_utc == server.not_valid_after_utc


def test_a_rotation_killed_after_writing_the_secrets_is_finished_by_the_next_run(
        rotate: Rotate, kubectl: Kubectl, k8s: Callable[..., Any], certificates: Certificates,
        probe_factory: Callable[[], Any]) -> None:
    before = state(k8s, certificates)
    rotate("-e", "cert_rotation_force=true", "-e", "cert_rotation_pause_after_issue_seconds=900",
           "-e", "cert_rotation_job_wait=false", log_name="interrupted-run")
    jobs = sorted(k8s("jobs")["items"], key=lambda j: j["metadata"]["creationTimestamp"])
    job = jobs[-1]["metadata"]["name"]

    # Wait until both Secrets hold new certificates (the job then pauses), then kill the job.
    wait_until(f"job {job} to write both Secrets", lambda: state(k8s, certificates), timeout=300, interval=3,
               until=lambda now: (now["server_serial"] != before["server_serial"]
                                  and now["client_serial"] != before["client_serial"]))
    # Deleting the Job kills its pod (and no retry pod replaces it).
    kubectl("delete", "job", job, "--cascade=foreground", "--wait=true", timeout=180)
    assert not k8s("pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]
    half_done = state(k8s, certificates)

    # Half done: new certificates in the Secrets, not yet loaded by PostgreSQL or the backend.
    assert certificates.presented_serial() == before["server_serial"]
    assert half_done["backend_recorded_serial"] == str(before["client_serial"])
    assert half_done["backend_pods"] == before["backend_pods"]

    # The next (unforced) run renews nothing that was due and finishes the rotation: it rolls the
    # backend, then revokes the client certificate it replaced, which re-issues the server
    # certificate with the new CRL.
    rotate(log_name="repair-run")
    after = state(k8s, certificates)
    assert after["client_serial"] == half_done["client_serial"]
    assert after["server_serial"] != half_done["server_serial"]
    crl = x509.load_pem_x509_crl(kubectl.secret(SERVER_SECRET)["ca.crl"])
    assert crl.get_revoked_certificate_by_serial_number(before["client_serial"]) is not None
    assert certificates.presented_serial() == after["server_serial"]
    assert after["backend_recorded_serial"] == str(after["client_serial"])
    assert not set(after["backend_pods"]) & set(before["backend_pods"])
    backend_ready(k8s)
    backend_connections_use(certificates, k8s, after["client_serial"])
    catalog_serves(probe_factory)


def test_restart_mode_restarts_postgres_and_the_backend_and_both_come_back_ready(
        rotate: Rotate, k8s: Callable[..., Any], certificates: Certificates,
        probe_factory: Callable[[], Any], artifacts: Path) -> None:
    before = state(k8s, certificates)
    probe = probe_factory().start()
    try:
        rotate("-e", json.dumps({"cert_rotation_force": True,
                                 "cert_rotation_job_extra_vars": {"cert_rotation_postgres_mode": "restart"}}),
               log_name="restart-mode-run")
    finally:
        availability = probe.stop()
    (artifacts / "availability-restart.json").write_text(json.dumps(availability, indent=2))
    after = state(k8s, certificates)

    assert after["server_serial"] != before["server_serial"]
    assert after["client_serial"] != before["client_serial"]
    # PostgreSQL was restarted (a new pod) and presents the new certificate.
    assert after["postgres_pod"] != before["postgres_pod"]
    assert after["postgres_generation"] > before["postgres_generation"]
    postgres = k8s("statefulset", "postgres")["status"]
    assert postgres.get("readyReplicas") == 1 and postgres.get("currentRevision") == postgres.get("updateRevision")
    assert certificates.presented_serial() == after["server_serial"]
    # The backend was rolled and serves the catalog with the new client certificate.
    assert not set(after["backend_pods"]) & set(before["backend_pods"])
    backend_ready(k8s)
    backend_connections_use(certificates, k8s, after["client_serial"])
    catalog_serves(probe_factory)
    # A restart of PostgreSQL is an outage for the backend's queries: measured, not hidden.
    assert availability["requests"] > 50, availability
