"""Data outlives the PostgreSQL pod: rows written before it is deleted are there after."""

from __future__ import annotations

import secrets
from typing import Any

from conftest import NAMESPACE, STATEFULSET, conninfo, kubectl, pod_uid, psql, wait_statefulset_ready


def test_rows_written_before_the_pod_is_deleted_are_there_after_it_comes_back(host: Any, client_pod: str) -> None:
    marker = secrets.token_hex(8)
    write = psql(
        host, client_pod, conninfo(),
        "CREATE TABLE IF NOT EXISTS persistence_check (marker text PRIMARY KEY); "
        f"INSERT INTO persistence_check VALUES ('{marker}')",
    )
    assert write.rc == 0, write.stderr

    pod = f"{STATEFULSET}-0"
    uid_before = pod_uid(pod)
    kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=true", timeout=180)
    wait_statefulset_ready()
    kubectl("-n", NAMESPACE, "wait", "pod", pod, "--for=condition=Ready", "--timeout=180s", timeout=200)
    uid_after = pod_uid(pod)
    assert uid_after != uid_before, "the pod was not replaced"

    read = psql(host, client_pod, conninfo(), f"SELECT count(*) FROM persistence_check WHERE marker = '{marker}'")
    assert read.rc == 0, read.stderr
    assert read.stdout.strip() == "1"
