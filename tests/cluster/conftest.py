"""Fixtures for the test cluster's acceptance tests (helpers live in tests/lib/testcluster.py)."""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import Cluster, wait_until  # noqa: E402  (tests/lib)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cluster = Cluster()
    status = cluster.status()
    if status.returncode != 0:
        pytest.fail(f"the test cluster is not up; run tests/cluster/cluster up\n{status.stdout}{status.stderr}")
    return cluster


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40].strip("-")
    name = f"acc-{slug}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    wait_until("the namespace's default ServiceAccount",
               lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               timeout=60)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def busybox_image(cluster: Cluster) -> str:
    return cluster.env["TESTCLUSTER_BUSYBOX_IMAGE"]
