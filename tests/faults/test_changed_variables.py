"""site.yml run again with changed variables (backend replicas, backend resources, an extra
app-config key) changes only what they concern: the CA is never regenerated, the data stays,
the backend rolls onto new pods, PostgreSQL and the frontend keep their pods, and a run after
that reports changed=0."""

from __future__ import annotations

import json
from typing import Any

from conftest import (
    BACKEND, BACKEND_SELECTOR, FRONTEND, FRONTEND_SELECTOR, Deployment, assert_leaf_secrets_consistent,
    assert_rows_present, assert_workloads_use_the_secrets, ca_snapshot, log, write_artifact, write_rows,
)

CHANGED = {
    "backstage_replicas": 2,
    "backstage_resources": {"requests": {"cpu": "150m", "memory": "400Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "backstage_extra_app_config": {"faults": {"changedVariables": True}},
}


def uids(deployment: Deployment, selector: str) -> set[str]:
    return {p["metadata"]["uid"] for p in deployment.pods(selector)}


def snapshot(deployment: Deployment) -> dict[str, Any]:
    postgres = deployment.postgres_pod()
    return {
        "ca": ca_snapshot(deployment),
        "postgres_pod": postgres["metadata"]["uid"],
        "postgres_restarts": sum(c["restartCount"] for c in postgres["status"]["containerStatuses"]),
        "backend_pods": uids(deployment, BACKEND_SELECTOR),
        "frontend_pods": uids(deployment, FRONTEND_SELECTOR),
        "frontend_generation": deployment.get("deployment", FRONTEND)["metadata"]["generation"],
    }


def test_changed_variables_roll_only_the_backend_and_keep_ca_and_data(deployment: Deployment) -> None:
    rows = write_rows(deployment)
    before = snapshot(deployment)

    changed_run = deployment.deploy("changed-variables", **CHANGED)
    after = snapshot(deployment)
    again = deployment.deploy("changed-variables-again", **CHANGED)

    result = {"changed_run": len(changed_run.site_changes), "run_after": again.site_changes,
              "backend_pods_before": len(before["backend_pods"]), "backend_pods_after": len(after["backend_pods"])}
    write_artifact("changed-variables.json", result)
    log(f"changed variables: {result}")

    # The CA Secret is the same object with the same data.
    assert after["ca"] == before["ca"]
    # The backend rolled onto new pods with the new settings; PostgreSQL and the frontend did not move.
    assert after["backend_pods"] and not after["backend_pods"] & before["backend_pods"]
    assert len(after["backend_pods"]) == CHANGED["backstage_replicas"]
    backend = deployment.get("deployment", BACKEND)
    container = backend["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == CHANGED["backstage_resources"]["requests"]
    assert deployment.rollout_done("deployment", BACKEND)
    assert after["postgres_pod"] == before["postgres_pod"]
    assert after["postgres_restarts"] == before["postgres_restarts"]
    assert after["frontend_pods"] == before["frontend_pods"]
    assert after["frontend_generation"] == before["frontend_generation"]
    # The new key reached the backend's app-config.
    config_maps = deployment.get("configmaps")["items"]
    assert any("changedVariables" in json.dumps(c.get("data", {})) for c in config_maps)
    # The data stays, the certificates are still the ones in use, and Backstage answers.
    assert_rows_present(deployment, rows)
    assert_workloads_use_the_secrets(deployment, assert_leaf_secrets_consistent(deployment))
    assert deployment.answers()
    # The first run changed something; the one after it nothing.
    assert changed_run.site_changes
    assert again.site_changes == []
