"""A certificate rotation Job killed mid-way (its pod deleted with --grace-period=0 --force, then
the Job) leaves nothing half-written, and the next run finishes the rotation: every leaf Secret is
consistent and signed by the unchanged CA, PostgreSQL presents the server Secret's certificate,
the backend connects with the client Secret's certificate, and Backstage answers through the
Ingress.

Kill points:
- ``first-leaf-secret-written``: as soon as a leaf Secret's resourceVersion changes;
- ``backend-rolling``: as soon as the rotation starts rolling the backend (both Secrets written,
  the Deployment's generation bumped, its pods not yet replaced; PostgreSQL reloads after the
  roll, once the replaced client certificate is revoked)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from cryptography import x509

from conftest import (
    BACKEND, CLIENT_SECRET, SERVER_SECRET, Deployment, assert_leaf_secrets_consistent,
    assert_workloads_use_the_secrets, ca_snapshot, log, write_artifact, write_rows, assert_rows_present,
)
from testcluster import wait_until

JOB_LABEL = "batch.kubernetes.io/job-name"


@dataclass
class Watch:
    """A watch on one object: ``established`` once it has listed the object (changes from then on
    reach it), ``seen`` once it saw the change it looks for."""

    what: str
    established: threading.Event = field(default_factory=threading.Event)
    seen: threading.Event = field(default_factory=threading.Event)


def watch_until(deployment: Deployment, kind: str, name: str, changed: Callable[[dict[str, Any]], bool],
                timeout: float) -> Watch:
    """A Watch on kind/name whose ``seen`` is set as soon as it sees an object for which ``changed`` is true."""
    watch = Watch(f"{kind}/{name}")
    process = deployment.kubectl.popen("get", kind, name, "--watch", "--output-watch-events", "-o", "json")

    def read() -> None:
        decoder, buffer = json.JSONDecoder(), ""
        assert process.stdout is not None
        for line in process.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = buffer.strip()[end:]
            # The first event is the object as listed; the watch goes on from its resourceVersion.
            watch.established.set()
            obj = event.get("object", event)
            if changed(obj):
                watch.seen.set()
                break
        process.terminate()

    threading.Thread(target=read, daemon=True).start()
    timer = threading.Timer(timeout, process.terminate)
    timer.daemon = True
    timer.start()
    return watch


def kill_point_first_leaf(deployment: Deployment) -> list[Watch]:
    watches = []
    for name in (SERVER_SECRET, CLIENT_SECRET):
        version = deployment.get("secret", name)["metadata"]["resourceVersion"]
        watches.append(watch_until(deployment, "secret", name,
                                   lambda obj, v=version: obj["metadata"]["resourceVersion"] != v, 600))
    return watches


def kill_point_backend_rolling(deployment: Deployment) -> list[Watch]:
    generation = deployment.get("deployment", BACKEND)["metadata"]["generation"]
    return [watch_until(deployment, "deployment", BACKEND,
                        lambda obj: obj["metadata"]["generation"] != generation, 600)]


KILL_POINTS = {
    "first-leaf-secret-written": kill_point_first_leaf,
    "backend-rolling": kill_point_backend_rolling,
}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_rotation_killed_mid_way_is_finished_by_the_next_run(deployment: Deployment, kill_point: str) -> None:
    rows = write_rows(deployment)
    ca_before = ca_snapshot(deployment)
    serials_before = assert_leaf_secrets_consistent(deployment)
    watches = KILL_POINTS[kill_point](deployment)
    wait_until("the watches to list their objects",
               lambda: [w.what for w in watches if not w.established.is_set()], timeout=60, interval=0.05,
               until=lambda waiting: not waiting)

    rotation_started = time.monotonic()
    deployment.rotate(f"rotation-killed-{kill_point}-start", "-e", "cert_rotation_force=true",
                      "-e", "cert_rotation_job_wait=false")
    job = sorted(deployment.get("jobs")["items"], key=lambda j: j["metadata"]["creationTimestamp"])[-1]
    job_name = job["metadata"]["name"]

    job_status: dict[str, Any] = {}
    next_job_check = 0.0

    def kill_point_reached() -> dict[str, Any]:
        """Whether a watch saw the kill point, and the Job's status (read every 2 s: it must not end first)."""
        nonlocal job_status, next_job_check
        if time.monotonic() >= next_job_check:
            job_status = deployment.get("job", job_name).get("status", {})
            assert not job_status.get("succeeded"), f"the Job finished before {kill_point} was seen"
            if job_status.get("failed"):
                logs = deployment.kubectl("logs", f"job/{job_name}", "--tail=30", check=False)
                pytest.fail(f"the rotation Job {job_name} failed before {kill_point}:\n{logs}")
            next_job_check = time.monotonic() + 2
        return {"reached": any(w.seen.is_set() for w in watches), "job_status": job_status}

    wait_until(f"the rotation Job {job_name} to reach {kill_point}", kill_point_reached, timeout=600, interval=0.05,
               until=lambda seen: seen["reached"])
    killed_at = time.monotonic()
    pods = [p["metadata"]["name"] for p in deployment.get("pods", "-l", f"{JOB_LABEL}={job_name}")["items"]]
    deployment.kubectl("delete", "pod", *pods, "--grace-period=0", "--force", "--wait=false")
    deployment.kubectl("delete", "job", job_name, "--cascade=foreground", "--wait=true", timeout=180)
    assert not deployment.get("pods", "-l", f"{JOB_LABEL}={job_name}")["items"]
    half = {
        "kill_point": kill_point,
        "killed_after_s": round(killed_at - rotation_started, 1),
        "killed_pods": pods,
        "secrets_changed": [name for name in (SERVER_SECRET, CLIENT_SECRET)
                            if deployment.certificate(name).serial_number != serials_before[name]],
        "backend_generation": deployment.get("deployment", BACKEND)["metadata"]["generation"],
    }
    log(f"killed the rotation at {kill_point}: {half}")
    # Whatever was written is whole: the key pairs match and the CA signed them.
    serials_at_kill = assert_leaf_secrets_consistent(deployment)
    assert ca_snapshot(deployment) == ca_before

    started = time.monotonic()
    result = deployment.rotate(f"rotation-killed-{kill_point}-repair")
    half["repair_run_s"] = round(time.monotonic() - started, 1)
    half["repair_report"] = re.findall(r'Renewed: [^"\\]*', result.stdout)[:1]

    # The CA Secret is untouched, every leaf Secret consistent, and what runs uses them.
    assert ca_snapshot(deployment) == ca_before
    serials = assert_leaf_secrets_consistent(deployment)
    # The next run (not forced) issues no client certificate: it loads what the killed run wrote.
    # Once the backend runs with a new one, it revokes the replaced one, which re-issues the server
    # certificate with the new CRL; otherwise it issues nothing.
    assert serials[CLIENT_SECRET] == serials_at_kill[CLIENT_SECRET]
    if serials[CLIENT_SECRET] != serials_before[CLIENT_SECRET]:
        assert serials[SERVER_SECRET] != serials_at_kill[SERVER_SECRET]
        crl = x509.load_pem_x509_crl(deployment.secret(SERVER_SECRET)["ca.crl"].encode())
        assert crl.get_revoked_certificate_by_serial_number(serials_before[CLIENT_SECRET]) is not None
    else:
        assert serials[SERVER_SECRET] == serials_at_kill[SERVER_SECRET]
    assert deployment.rollout_done("deployment", BACKEND)
    assert deployment.rollout_done("statefulset", "postgres")
    assert_workloads_use_the_secrets(deployment, serials)
    assert deployment.answers()
    assert_rows_present(deployment, rows)
    half["serials_before"] = {k: str(v) for k, v in serials_before.items()}
    half["serials_at_kill"] = {k: str(v) for k, v in serials_at_kill.items()}
    half["serials_after"] = {k: str(v) for k, v in serials.items()}
    write_artifact(f"rotation-killed-{kill_point}.json", half)
