"""Helpers for tests that use the test cluster (kubectl, ctr, waiting).

The cluster must be up (`tests/cluster/cluster up`, which `make cluster-test` runs first);
these tests talk to it only as a user would: kubectl with the admin kubeconfig, the
containerd socket for image imports and the ingress URL from the host.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "cluster"


def cluster_env() -> dict[str, str]:
    """The variables `cluster env` exports, as a dict."""
    out = subprocess.run([str(CLUSTER), "env"], check=True, capture_output=True, text=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        if not line.startswith("export "):
            continue
        name, value = line[len("export "):].split("=", 1)
        if name == "PATH":
            continue
        env[name] = shlex.split(value)[0] if value else ""
    return env


@dataclass
class Cluster:
    env: dict[str, str]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [self.env["TESTCLUSTER_KUBECTL"], "--kubeconfig", self.env["KUBECONFIG"], *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None) -> None:
        items = manifest if isinstance(manifest, list) else [manifest]
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, input=doc)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLUSTER), "ctr", *args], check=True, capture_output=True, text=True)


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 120, interval: float = 1) -> Any:
    """Poll predicate until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
