"""The whole cluster stops and starts again (`tests/cluster/cluster down`, then `up`): the data
written before, the certificates (same Secrets, same serials) and Backstage come back, and a
site.yml run afterwards changes nothing.

This restarts its cluster, so it runs on a separate instance (TESTCLUSTER_INSTANCE=2, brought up
from nothing and destroyed at the end), never on the shared one."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from conftest import (
    CA_SECRET, CLIENT_SECRET, SERVER_SECRET, Cluster, Deployment, assert_leaf_secrets_consistent,
    assert_rows_present, assert_workloads_use_the_secrets, log, write_artifact, write_rows,
)

INSTANCE = 2
# Generous bound on Backstage answering after `up` returned (measured values in the artifact).
ANSWER_BOUND_S = 300


@pytest.fixture(scope="module")
def restart_deployment() -> Iterator[Deployment]:
    cluster = Cluster(INSTANCE)
    cluster.command("destroy")
    try:
        started = time.monotonic()
        cluster.command("up")
        log(f"cluster instance {INSTANCE} up from nothing in {time.monotonic() - started:.0f} s")
        deployment = Deployment(cluster)
        deployment.deploy("cluster-restart-deploy")
        deployment.wait_until_answering(300)
        yield deployment
    finally:
        cluster.command("destroy")


def secrets(deployment: Deployment) -> dict[str, Any]:
    out = {}
    for name in (CA_SECRET, SERVER_SECRET, CLIENT_SECRET):
        secret = deployment.get("secret", name)
        out[name] = {"uid": secret["metadata"]["uid"], "resourceVersion": secret["metadata"]["resourceVersion"],
                     "data": secret["data"]}
    return out


def test_data_and_certificates_survive_a_cluster_restart(restart_deployment: Deployment) -> None:
    deployment = restart_deployment
    rows = write_rows(deployment, 10)
    secrets_before = secrets(deployment)
    serials_before = assert_leaf_secrets_consistent(deployment)

    started = time.monotonic()
    deployment.cluster.command("down")
    down_s = time.monotonic() - started
    started = time.monotonic()
    deployment.cluster.command("up")
    up_s = time.monotonic() - started
    answering_s = deployment.wait_until_answering(ANSWER_BOUND_S)
    result = {"down_s": round(down_s, 1), "up_s": round(up_s, 1),
              "answering_after_up_s": round(answering_s, 1)}
    log(f"cluster restart: {result}")

    # Data and certificates are the ones from before.
    assert_rows_present(deployment, rows)
    assert secrets(deployment) == secrets_before
    serials = assert_leaf_secrets_consistent(deployment)
    assert serials == serials_before
    for kind, name in (("deployment", "backstage-backend"), ("deployment", "backstage-frontend"),
                       ("statefulset", "postgres")):
        assert deployment.rollout_done(kind, name), name
    assert_workloads_use_the_secrets(deployment, serials)

    # site.yml afterwards has nothing to do.
    rerun = deployment.deploy("cluster-restart-rerun")
    result["rerun_changed"] = rerun.site_changes
    write_artifact("cluster-restart.json", result)
    assert rerun.site_changes == []
    assert secrets(deployment) == secrets_before
    assert deployment.answers()
