"""playbooks/backup.yml and restore.yml: a backup of every database (catalog, auth) restored into
a fresh namespace gives back the same catalog entities (same uids), registered locations and the
auth plugin's signing keys, with that namespace's backend stopped during the restore and started
after it; a restore into a split deployment stops and starts every one of its backends; a restore
of a missing or corrupt backup is refused with its reason and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import ARTIFACTS, NAMESPACE, Deployment, faults, log, run_playbook
from testcluster import wait_until

RESTORED_NAMESPACE = "backstage-lifecycle-restored"
RESTORED_HOST = "backstage-lifecycle-restored.localhost"
SPLIT_NAMESPACE = "backstage-lifecycle-split"
SPLIT_HOST = "backstage-lifecycle-split.localhost"
# Two backends: the gateway the Ingress sends every request to, and the one with the catalog.
SPLIT_BACKENDS = [{"name": "gateway", "plugins": ["gateway"], "replicas": 1},
                  {"name": "core", "plugins": ["auth", "catalog", "proxy"], "replicas": 1}]
BACKEND_SELECTOR = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"


def entities(deployment: Any) -> list[tuple[str, str, str, str]]:
    """Every catalog entity through the API: kind, namespace, name and uid (made when the entity
    was first stored: a restored entity keeps it, a re-ingested one does not)."""
    status, body = deployment.http("GET", "/api/catalog/entities?fields=kind,metadata.namespace,metadata.name,metadata.uid",
                                   timeout=60)
    assert status == 200, body[:300]
    return sorted((e["kind"], e["metadata"].get("namespace", "default"), e["metadata"]["name"], e["metadata"]["uid"])
                  for e in json.loads(body))


def signing_keys(deployment: Any) -> set[str]:
    """The auth plugin's signing keys (its own database)."""
    rows = deployment.query("SELECT kid FROM signing_keys", database="backstage_plugin_auth")["rows"]
    return {row[0] for row in rows}


def backend_pods(deployment: Any) -> set[str]:
    return {p["metadata"]["uid"] for p in deployment.pods(BACKEND_SELECTOR)}


def backup(deployment: Any, name: str, *extra: str, **variables: Any) -> str:
    run = run_playbook(name, "backup", {"backstage_k8s_namespace": deployment.namespace, **variables}, *extra,
                       cluster=deployment.cluster).assert_ok()
    backup_name = next(line.split("BACKUP_NAME=")[1].strip(' "\',') for line in run.output.splitlines()
                       if "BACKUP_NAME=" in line)
    log(f"backup {backup_name} of {deployment.namespace} took {run.seconds:.0f} s")
    return backup_name


@pytest.fixture(scope="module")
def restored(deployment: Any) -> Iterator[Any]:
    """A second Backstage, deployed from nothing in a namespace of its own."""
    other = Deployment(deployment.cluster, RESTORED_NAMESPACE, RESTORED_HOST)
    other.delete_namespace()
    other.deploy("lifecycle-deploy-restored")
    other.wait_until_answering(300)
    yield other
    other.delete_namespace()


def test_a_backup_restored_into_a_fresh_namespace_has_the_same_entities_locations_and_keys(
        deployment: Any, restored: Any, tmp_path: Path) -> None:
    targets = faults.write_rows(deployment)
    wait_until("the new locations to be in the catalog", lambda: set(targets) <= deployment.location_targets(), 60)
    before = {"entities": entities(deployment), "locations": deployment.location_targets(),
              "keys": signing_keys(deployment)}
    assert before["keys"], "the auth plugin has no signing key yet"
    name = backup(deployment, "backup", postgres_backup_fetch_dir=str(tmp_path))
    fetched = tmp_path / name
    assert {"MANIFEST", "SHA256SUMS", "globals.sql", "databases.tsv"} <= {p.name for p in fetched.iterdir()}
    assert {"backstage_plugin_catalog", "backstage_plugin_auth"} <= {
        line.split("\t")[1] for line in (fetched / "databases.tsv").read_text().splitlines()}

    fresh_entities, fresh_pods = entities(restored), backend_pods(restored)
    assert {e[3] for e in fresh_entities}.isdisjoint({e[3] for e in before["entities"]})
    run = run_playbook("restore", "restore", {"backstage_k8s_namespace": RESTORED_NAMESPACE,
                                              "postgres_backup_restore_source_namespace": NAMESPACE},
                       cluster=deployment.cluster).assert_ok()
    log(f"restore into {RESTORED_NAMESPACE} took {run.seconds:.0f} s")
    assert f"RESTORED={name}" in run.output
    restored.wait_until_answering(300)
    restored._token = None
    assert backend_pods(restored).isdisjoint(fresh_pods), "the backend was not restarted"
    assert entities(restored) == before["entities"]
    assert restored.location_targets() == before["locations"]
    assert before["keys"] <= signing_keys(restored)
    (ARTIFACTS / "restore-compared.json").write_text(json.dumps(
        {"backup": name, "entities": len(before["entities"]), "locations": len(before["locations"])}, indent=2))
    # Nothing of the restore is left behind in either namespace.
    assert deployment.get("secret", "-l", "app.kubernetes.io/name=postgres-backup")["items"] == []
    assert {p["metadata"]["name"] for p in restored.get("networkpolicy", "-l", "app.kubernetes.io/name=postgres-backup")["items"]} \
        == {"postgres-backup-postgres"}


def backend_deployments(deployment: Any) -> dict[str, dict[str, int]]:
    """Each backend Deployment's generation (a scale to none and back adds two) and replicas."""
    return {d["metadata"]["name"]: {"generation": d["metadata"]["generation"], "replicas": d["spec"]["replicas"]}
            for d in deployment.get("deployment", "-l", BACKEND_SELECTOR)["items"]}


def test_a_restore_into_a_split_deployment_stops_and_starts_every_backend(cluster: Any) -> None:
    split = Deployment(cluster, SPLIT_NAMESPACE, SPLIT_HOST)
    split.delete_namespace()
    try:
        split.deploy("lifecycle-deploy-split", backstage_k8s_backends=SPLIT_BACKENDS)
        split.wait_until_answering(300)
        before, pods, catalog = backend_deployments(split), backend_pods(split), entities(split)
        assert set(before) == {"backstage-backend-gateway", "backstage-backend-core"}
        name = backup(split, "backup-split")
        variables = {"backstage_k8s_namespace": SPLIT_NAMESPACE, "postgres_backup_restore_name": name}

        check = run_playbook("restore-split-check", "restore", variables, "--check", cluster=cluster).assert_ok()
        assert ("stop the Backstage backends of backstage-lifecycle-split "
                "(backstage-backend-core, backstage-backend-gateway)") in " ".join(check.output.split())
        assert backend_deployments(split) == before

        run = run_playbook("restore-split", "restore", variables, cluster=cluster).assert_ok()
        assert f"RESTORED={name}" in run.output
        # Each was scaled to none (the restore waits until its pods are gone) and back to its replicas.
        assert backend_deployments(split) == {
            deployment: {"generation": was["generation"] + 2, "replicas": was["replicas"]}
            for deployment, was in before.items()}
        split.wait_until_answering(300)
        split._token = None
        assert backend_pods(split).isdisjoint(pods), "a backend kept its pods through the restore"
        assert entities(split) == catalog
    finally:
        split.delete_namespace()


def corrupt(deployment: Any, backup_name: str) -> None:
    """Append a byte to the backup's first dump, from a pod that mounts the backup volume."""
    image = deployment.get("cronjob", "postgres-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "corrupt-backup"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "corrupt", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", f"printf x >>/backups/{backup_name}/001.dump"],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "b", "mountPath": "/backups"}]}],
            "volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": "postgres-backup"}}]}}}}
    deployment.kubectl.apply(job)
    deployment.kubectl("wait", "--for=condition=complete", "job/corrupt-backup", "--timeout=120s", timeout=150)
    deployment.kubectl("delete", "job", "corrupt-backup", "--wait=false")


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_a_restore_of_a_missing_or_corrupt_backup_is_refused_and_changes_nothing(deployment: Any, case: str) -> None:
    if case == "missing":
        variables, reason = {"postgres_backup_restore_name": "20000101T000000Z"}, "there is no backup 20000101T000000Z"
    else:
        name = backup(deployment, "backup-to-corrupt")
        corrupt(deployment, name)
        variables, reason = {}, f"backup {name} is corrupt"
    pods, locations = backend_pods(deployment), deployment.location_targets()
    run = run_playbook(f"restore-{case}", "restore", {"backstage_k8s_namespace": NAMESPACE, **variables},
                       cluster=deployment.cluster)
    assert run.returncode != 0
    assert "Nothing was changed: " + reason in run.output.replace("\n", " ")
    assert backend_pods(deployment) == pods
    assert deployment.location_targets() == locations
