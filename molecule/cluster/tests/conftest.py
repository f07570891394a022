"""Fixtures of the cluster scenario's checks: kubectl, and HTTP through the Ingress with the
scenario's Host header (the helpers live in tests/lib/testcluster.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import pytest

SCENARIO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCENARIO_DIR.parent.parent / "tests" / "lib"))

# pylint: disable-next=unused-import
from testcluster import (  # noqa: E402,F401  (tests/lib; the fixtures every scenario shares)
    REPO, Kubectl, Response, artifacts, cluster_env, guest_token as sign_in_as_guest, http_request, namespace, scenario,
)


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    return SCENARIO_DIR


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    """kubectl against the test cluster, in no namespace of its own."""
    return Kubectl()


@pytest.fixture(scope="session")
def k8s_json(kubectl: Kubectl, namespace: str) -> Callable[..., Any]:
    """`kubectl get ARGS -o json` in the scenario's namespace, parsed."""
    return kubectl.in_namespace(namespace).get


HttpGet = Callable[..., Response]


@pytest.fixture(scope="session")
def ingress_get(scenario: dict[str, Any]) -> HttpGet:
    """GET a path through the test cluster's Ingress, as a browser on the scenario's host would."""
    base = cluster_env()["TESTCLUSTER_INGRESS_URL"]
    host = scenario["backstage_ingress_host"]

    def get(path: str, token: str | None = None, host_header: str | None = host) -> Response:
        return http_request(base + path, host=host_header, token=token)

    return get


@pytest.fixture(scope="session")
def public_url(scenario: dict[str, Any]) -> str:
    port = cluster_env()["TESTCLUSTER_INGRESS_URL"].rsplit(":", 1)[1]
    return f"http://{scenario['backstage_ingress_host']}:{port}"


@pytest.fixture(scope="session")
def guest_token(scenario: dict[str, Any]) -> str:
    """Sign in as the guest user through the Ingress, as the portal does."""
    return sign_in_as_guest(cluster_env()["TESTCLUSTER_INGRESS_URL"], scenario["backstage_ingress_host"], wait=60)
