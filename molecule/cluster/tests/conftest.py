"""Fixtures of the cluster scenario's checks: the test cluster's environment, kubectl, and
HTTP through the Ingress with the scenario's Host header."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

SCENARIO_DIR = Path(__file__).resolve().parent.parent
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or SCENARIO_DIR.parent.parent)
ARTIFACTS = REPO / "artifacts" / "molecule-cluster"


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO / "tests" / "cluster" / "cluster"), "env"],
        check=True, capture_output=True, text=True,
    ).stdout
    return dict(re.findall(r"^export ([A-Z_]+)=(.*)$", out, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def scenario() -> dict[str, Any]:
    return yaml.safe_load((SCENARIO_DIR / "vars" / "scenario.yml").read_text())


@pytest.fixture(scope="session")
def namespace(scenario: dict[str, Any]) -> str:
    return scenario["backstage_k8s_namespace"]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


Kubectl = Callable[..., str]


@pytest.fixture(scope="session")
def kubectl(cluster_env: dict[str, str]) -> Kubectl:
    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            [cluster_env["TESTCLUSTER_KUBECTL"], "--kubeconfig", cluster_env["KUBECONFIG"], *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    return run


@pytest.fixture(scope="session")
def k8s_json(kubectl: Kubectl, namespace: str) -> Callable[..., Any]:
    def get(*args: str) -> Any:
        return json.loads(kubectl("-n", namespace, "get", *args, "-o", "json"))

    return get


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


HttpGet = Callable[..., Response]


@pytest.fixture(scope="session")
def ingress_get(cluster_env: dict[str, str], scenario: dict[str, Any]) -> HttpGet:
    """GET a path through the test cluster's Ingress, as a browser on the scenario's host would."""
    base = cluster_env["TESTCLUSTER_INGRESS_URL"]
    host = scenario["backstage_ingress_host"]

    def get(path: str, token: str | None = None, host_header: str | None = host) -> Response:
        request = urllib.request.Request(base + path)
        if host_header:
            request.add_header("Host", host_header)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    return get


@pytest.fixture(scope="session")
def public_url(cluster_env: dict[str, str], scenario: dict[str, Any]) -> str:
    port = cluster_env["TESTCLUSTER_INGRESS_URL"].rsplit(":", 1)[1]
    return f"http://{scenario['backstage_ingress_host']}:{port}"


@pytest.fixture(scope="session")
def guest_token(ingress_get: HttpGet) -> str:
    """Sign in as the guest user through the Ingress, as the portal does."""
    deadline = time.monotonic() + 60
    while True:
        response = ingress_get("/api/auth/guest/refresh")
        if response.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert response.status == 200, f"guest sign-in through the Ingress: {response.status} {response.body[:300]!r}"
    return response.json()["backstageIdentity"]["token"]
