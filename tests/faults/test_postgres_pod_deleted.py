"""The PostgreSQL pod is deleted under a steady write load through Backstage: every write Backstage
acknowledged is still there afterwards, and Backstage answers again through the Ingress.

A writer adds a catalog location (one row) with a unique target every 150 ms through the Ingress as
the guest user. The pod is deleted once normally and once forcibly (--grace-period=0 --force); the
StatefulSet brings it back on the same volume. The measured recovery time (from the delete to the
first of the writes that succeed from then on), the longest wait between two acknowledged writes
and the count of failed writes go to
artifacts/faults/postgres-pod-deleted-*.json."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import POSTGRES_SELECTOR, Deployment, Writer, assert_rows_present, log, write_artifact
from testcluster import wait_until

# Generous: a normal delete waits up to the pod's termination grace period, then PostgreSQL
# replays its WAL and the backend's pool reconnects. Measured values are in the artifacts.
RECOVERY_BOUND_S = 180
# Backstage "answers again" once this many writes in a row are acknowledged after the delete.
ACKNOWLEDGED_IN_A_ROW = 20

DELETES = {
    "normal": [],
    "forced": ["--grace-period=0", "--force"],
}


@pytest.mark.parametrize("how", list(DELETES), ids=[f"{how}-delete" for how in DELETES])
def test_deleting_the_postgres_pod_loses_no_acknowledged_write(deployment: Deployment, how: str) -> None:
    old_pod = deployment.postgres_pod()["metadata"]
    writer = Writer(deployment).start()
    try:
        # A steady state first: writes go through.
        wait_until("10 acknowledged writes in a row before any fault", lambda: writer.acknowledged_in_a_row_since(0),
                   timeout=60, interval=0.2, until=lambda in_a_row: in_a_row >= 10,
                   diagnostics=lambda: f"writes fail before any fault: {writer.writes[-5:]}")

        deleted_at = time.monotonic()
        deployment.kubectl("delete", "pod", old_pod["name"], "--wait=false", *DELETES[how])
        log(f"deleted {old_pod['name']} ({how}) after {len(writer.writes)} writes")

        # Keep writing until PostgreSQL runs again in a new pod and Backstage acknowledges writes again.
        def recovery() -> dict[str, Any]:
            seen: dict[str, Any] = {"acknowledged_in_a_row": writer.acknowledged_in_a_row_since(deleted_at)}
            if seen["acknowledged_in_a_row"] >= ACKNOWLEDGED_IN_A_ROW:
                pods = deployment.pods(POSTGRES_SELECTOR)
                seen["new_pod_ready"] = bool(pods and pods[0]["metadata"]["uid"] != old_pod["uid"] and all(
                    c["ready"] for c in pods[0]["status"].get("containerStatuses", [])))
            return seen

        wait_until("PostgreSQL in a new pod and writes acknowledged again", recovery, timeout=RECOVERY_BOUND_S + 60,
                   interval=0.5, until=lambda seen: seen.get("new_pod_ready"),
                   diagnostics=lambda: f"last writes: {writer.writes[-3:]}")
    finally:
        writer.stop()

    after = [w for w in writer.writes if w.sent >= deleted_at]
    failed_after = [w for w in after if not w.acknowledged]
    last_failure = max((w.sent for w in failed_after), default=deleted_at)
    recovered_at = min((w.answered for w in after if w.acknowledged and w.sent > last_failure), default=None)
    assert recovered_at is not None
    recovery_s = recovered_at - deleted_at
    # The longest time a client waited, from the delete on, between two acknowledged answers (writes
    # that hang until PostgreSQL is back are acknowledged late, not failed).
    acknowledged_at = [deleted_at] + [w.answered for w in after if w.acknowledged]
    longest_gap_s = max(b - a for a, b in zip(acknowledged_at, acknowledged_at[1:]))
    kinds: dict[str, int] = {}
    for w in failed_after:
        kind = f"HTTP {w.status}" if w.status else w.error.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    result = {
        "delete": how,
        "writes": len(writer.writes),
        "acknowledged": len(writer.acknowledged()),
        "writes_per_s": round(len(writer.writes) / (writer.writes[-1].answered - writer.writes[0].sent), 1),
        "median_write_s": round(sorted(w.answered - w.sent for w in writer.writes)[len(writer.writes) // 2], 3),
        "writes_after_delete": len(after),
        "failed_writes": len(failed_after),
        "failed_by_kind": kinds,
        "recovery_s": round(recovery_s, 1),
        "longest_gap_s": round(longest_gap_s, 1),
        "first_failure_s": round(min((w.sent for w in failed_after), default=deleted_at) - deleted_at, 1),
        "new_pod_uid": deployment.postgres_pod()["metadata"]["uid"],
    }

    # Every acknowledged write is in the catalog's database, read back through the Ingress.
    assert_rows_present(deployment, writer.acknowledged())
    # Backstage is healthy: the backend is ready, and readiness and a read answer through the Ingress.
    assert deployment.rollout_done("deployment", "backstage-backend")
    result["answering_after_s"] = round(deployment.wait_until_answering(60) + recovery_s, 1)
    write_artifact(f"postgres-pod-deleted-{how}.json", result)
    log(f"postgres pod deleted ({how}): {result}")
    assert recovery_s < RECOVERY_BOUND_S, result
