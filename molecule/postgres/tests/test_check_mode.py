"""Check mode tells the truth: no change on a converged deployment, nothing made on a new one."""

from __future__ import annotations

import re

from conftest import NAMESPACE, kubectl_json, run_converge


def _recap_changed(output: str) -> int:
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_check_mode_on_the_converged_deployment_reports_no_change(postgres_image: str) -> None:
    result = run_converge({"postgres_image": postgres_image}, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _recap_changed(result.stdout) == 0, result.stdout


def test_check_mode_in_a_new_namespace_reports_changes_and_creates_nothing(postgres_image: str) -> None:
    namespace = f"{NAMESPACE}-check"
    result = run_converge(
        {"pki_namespace": namespace, "postgres_namespace": namespace, "postgres_image": postgres_image},
        "--check",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _recap_changed(result.stdout) > 0
    assert "postgres-server-tls: would issue a new certificate" in result.stdout
    names = {item["metadata"]["name"] for item in kubectl_json("get", "namespaces")["items"]}
    assert namespace not in names
