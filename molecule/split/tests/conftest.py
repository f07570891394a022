"""Fixtures of the split scenario: kubectl in its namespace, HTTP through the Ingress with the
scenario's Host header, and the availability probe of bench/availability.py (the helpers live in
tests/lib/testcluster.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import pytest

SCENARIO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCENARIO_DIR.parent.parent / "tests" / "lib"))
sys.path.insert(0, str(SCENARIO_DIR.parent.parent / "bench"))

import availability  # noqa: E402  (bench/availability.py)
# pylint: disable-next=unused-import
from testcluster import (  # noqa: E402,F401  (tests/lib; the fixtures every scenario shares)
    Kubectl, Response, artifacts, cluster_env, guest_token as sign_in_as_guest, http_request, namespace, scenario,
)


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    return SCENARIO_DIR


@pytest.fixture(scope="session")
def kubectl(namespace: str) -> Kubectl:
    """kubectl against the test cluster, in the scenario's namespace."""
    return Kubectl(namespace)


@pytest.fixture(scope="session")
def ingress(scenario: dict[str, Any]) -> Callable[..., Response]:
    """A request through the test cluster's Ingress, as a browser on the scenario's host sends it."""
    base = cluster_env()["TESTCLUSTER_INGRESS_URL"]

    def request(path: str, **options: Any) -> Response:
        return http_request(base + path, host=scenario["backstage_ingress_host"], **options)

    return request


@pytest.fixture(scope="session")
def guest_token(scenario: dict[str, Any]) -> str:
    """Sign in as the guest user through the Ingress, as the portal does."""
    return sign_in_as_guest(cluster_env()["TESTCLUSTER_INGRESS_URL"], scenario["backstage_ingress_host"], wait=60)


@pytest.fixture(scope="session")
def public_url(scenario: dict[str, Any]) -> str:
    port = cluster_env()["TESTCLUSTER_INGRESS_URL"].rsplit(":", 1)[1]
    return f"http://{scenario['backstage_ingress_host']}:{port}"


@pytest.fixture(scope="session")
def probe_factory(scenario: dict[str, Any]) -> Callable[[], availability.Probe]:
    """Catalog requests through the Ingress every 0.1 s, between start() and stop()."""
    def make() -> availability.Probe:
        return availability.Probe(cluster_env()["TESTCLUSTER_INGRESS_URL"], scenario["backstage_ingress_host"])

    return make


@pytest.fixture(scope="session")
def scaffolder_task() -> dict[str, str]:
    """The scaffolder task the first test runs, for the later tests to find again."""
    return {}
