"""site.yml killed (SIGKILL to its process group) right after the pki role wrote new leaf
certificates (a forced rotation), before PostgreSQL or the backend restarted: the next site.yml
run finds PostgreSQL and the backend behind their Secrets and restarts them, with no new
certificate issued; PostgreSQL then presents the server Secret's certificate, the backend connects
with the client Secret's, Backstage answers with its data, and the run after that changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

from conftest import (
    BACKEND, BASE_VARS, CLIENT_SECRET, COLLECTIONS_PATH, SERVER_SECRET, Deployment, assert_leaf_secrets_consistent,
    assert_rows_present, assert_workloads_use_the_secrets, ca_snapshot, log, write_artifact, write_rows,
)
from test_rotation_killed import watch_until
from testcluster import ANSIBLE_PLAYBOOK, REPO, ansible_env, artifacts_dir, wait_until

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def pod_templates(deployment: Deployment) -> dict[str, Any]:
    """The pod templates' annotations of PostgreSQL and the backend: a restart changes them."""
    return {kind: deployment.get(kind, name)["spec"]["template"]["metadata"].get("annotations", {})
            for kind, name in (("statefulset", "postgres"), ("deployment", BACKEND))}


def test_site_killed_after_pki_wrote_new_leaves_is_finished_by_the_next_run(deployment: Deployment) -> None:
    rows = write_rows(deployment)
    ca_before = ca_snapshot(deployment)
    serials_before = assert_leaf_secrets_consistent(deployment)
    templates_before = pod_templates(deployment)
    versions = {name: deployment.get("secret", name)["metadata"]["resourceVersion"] for name in (SERVER_SECRET, CLIENT_SECRET)}
    watches = [watch_until(deployment, "secret", name, lambda obj, v=version: obj["metadata"]["resourceVersion"] != v, 1800)
               for name, version in versions.items()]
    wait_until("the watches to list the Secrets", lambda: all(w.established.is_set() for w in watches),
               timeout=60, interval=0.05)

    # site.yml in a process group of its own, so that SIGKILL takes its workers too.
    extra = {"faults_namespace": deployment.namespace, "faults_ingress_host": deployment.host, **BASE_VARS,
             "pki_force_rotation": True}
    log_path = artifacts_dir("faults") / "site-killed-after-pki-start.log"
    started = time.monotonic()
    with log_path.open("w") as output:
        process = subprocess.Popen(
            [ANSIBLE_PLAYBOOK, str(REPO / "tests" / "faults" / "deploy.yml"), "-e", json.dumps(extra)],
            stdout=output, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            env=ansible_env(COLLECTIONS_PATH, base=deployment.cluster.process_env))
        try:
            wait_until("site.yml to write both leaf Secrets",
                       lambda: process.poll() is not None or all(w.seen.is_set() for w in watches),
                       timeout=1800, interval=0.02)
            assert process.poll() is None, f"site.yml ended (rc {process.returncode}) before both Secrets changed"
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    killed_after = time.monotonic() - started
    templates_at_kill = pod_templates(deployment)
    serials_at_kill = assert_leaf_secrets_consistent(deployment)
    half = {"killed_after_s": round(killed_after, 1),
            "serials_before": {k: str(v) for k, v in serials_before.items()},
            "serials_at_kill": {k: str(v) for k, v in serials_at_kill.items()}}
    log(f"killed site.yml after pki: {half}")
    # The kill came between the Secrets' writes and any restart: both certificates are new, and
    # neither PostgreSQL nor the backend was restarted yet.
    assert all(serials_at_kill[name] != serials_before[name] for name in (SERVER_SECRET, CLIENT_SECRET)), half
    assert templates_at_kill == templates_before, "site.yml restarted a workload before it was killed"

    resumed = deployment.deploy("site-killed-after-pki-resume")
    half["resume_changes"] = resumed.site_changes

    # No certificate was issued again; the CA is untouched; what runs uses the Secrets.
    assert ca_snapshot(deployment) == ca_before
    serials = assert_leaf_secrets_consistent(deployment)
    assert serials == serials_at_kill
    assert deployment.rollout_done("deployment", BACKEND)
    assert deployment.rollout_done("statefulset", "postgres")
    for kind, annotations in pod_templates(deployment).items():
        assert annotations.get(RESTARTED_AT) != templates_before[kind].get(RESTARTED_AT), f"{kind} was not restarted"
    assert_workloads_use_the_secrets(deployment, serials)
    deployment.wait_until_answering(300)
    assert_rows_present(deployment, rows)

    again = deployment.deploy("site-killed-after-pki-again")
    half["run_after"] = again.site_changes
    write_artifact("site-killed-after-pki.json", half)
    assert again.site_changes == []
