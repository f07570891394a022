"""playbooks/uninstall.yml: check mode lists and removes nothing; a run removes every object of
the collection, in order, and nothing else (a foreign object in the namespace stays), keeping the
PostgreSQL data and the CA; a second run changes nothing; site.yml afterwards brings Backstage back
on the kept data and CA; a purge then removes the data too, and keeps the namespace while the
foreign object is in it."""

from __future__ import annotations

from typing import Any

from conftest import NAMESPACE, faults, log, run_playbook

FOREIGN = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "not-ours", "labels": {"app.kubernetes.io/part-of": "someone-else"}},
           "data": {"keep": "me"}}
MANAGED = "app.kubernetes.io/managed-by=backstage.k8s"
KINDS = "cronjobs,jobs,ingresses,deployments,statefulsets,poddisruptionbudgets,services,networkpolicies,configmaps,roles,rolebindings,serviceaccounts,secrets"
KEPT_SECRETS = {"backstage-pki-ca", "postgres-superuser"}


CLUSTER_KINDS = "validatingadmissionpolicies,validatingadmissionpolicybindings"


def managed(deployment: Any) -> set[str]:
    """The collection's objects in the namespace, and the cluster-scoped ones made for it."""
    return ({f"{o['kind']}/{o['metadata']['name']}" for o in deployment.get(KINDS, "-l", MANAGED)["items"]}
            | {f"{o['kind']}/{o['metadata']['name']}" for o in deployment.kubectl.get(
                CLUSTER_KINDS, "-l", f"{MANAGED},backstage.k8s/namespace={NAMESPACE}", namespaced=False)["items"]})


def test_uninstall_keeps_data_and_ca_and_site_brings_the_catalog_back(deployment: Any) -> None:
    rows = faults.write_rows(deployment)
    deployment.kubectl.apply(FOREIGN)
    ca = faults.ca_snapshot(deployment)
    statefulset = deployment.get("statefulset", "postgres")
    image = statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    claim = f"{statefulset['spec']['volumeClaimTemplates'][0]['metadata']['name']}-postgres-0"
    claim_uid = deployment.get("pvc", claim)["metadata"]["uid"]
    before = managed(deployment)
    assert {"StatefulSet/postgres", "Deployment/backstage-backend", "CronJob/backstage-cert-rotation",
            f"ValidatingAdmissionPolicy/backstage-cert-rotation-{NAMESPACE}"} <= before

    check = run_playbook("uninstall-check", "uninstall", {"backstage_k8s_namespace": NAMESPACE}, "--check",
                         cluster=deployment.cluster).assert_ok()
    assert check.recap["changed"] > 0
    assert "Would remove from" in check.output and "StatefulSet/postgres" in check.output
    assert managed(deployment) == before, "check mode removed something"

    run = run_playbook("uninstall", "uninstall", {"backstage_k8s_namespace": NAMESPACE},
                       cluster=deployment.cluster).assert_ok()
    left = managed(deployment)
    assert left == {f"Secret/{name}" for name in KEPT_SECRETS}, left
    assert deployment.get("pvc", claim)["metadata"]["uid"] == claim_uid
    assert deployment.get("configmap", "not-ours")["data"] == {"keep": "me"}
    assert deployment.pods("app.kubernetes.io/part-of=backstage") == []
    log(f"uninstall took {run.seconds:.0f} s")

    again = run_playbook("uninstall-again", "uninstall", {"backstage_k8s_namespace": NAMESPACE},
                         cluster=deployment.cluster).assert_ok()
    assert again.recap["changed"] == 0

    # The image running before (PostgreSQL 17 after the upgrade test): the kept data is of its version.
    deployment.deploy("lifecycle-redeploy", postgres_image=image)
    deployment.wait_until_answering(300)
    deployment._token = None
    assert faults.ca_snapshot(deployment) == ca
    assert deployment.get("pvc", claim)["metadata"]["uid"] == claim_uid
    faults.assert_rows_present(deployment, rows)


def test_purge_removes_the_data_and_keeps_a_namespace_holding_a_foreign_object(deployment: Any) -> None:
    deployment.kubectl.apply(FOREIGN)
    run = run_playbook("uninstall-purge", "uninstall", {"backstage_k8s_namespace": NAMESPACE, "uninstall_purge": True},
                       cluster=deployment.cluster).assert_ok()
    assert managed(deployment) == set()
    assert deployment.get("pvc")["items"] == []
    assert deployment.get("configmap", "not-ours")["data"] == {"keep": "me"}
    assert "is kept: it still holds ConfigMap/not-ours" in run.output
