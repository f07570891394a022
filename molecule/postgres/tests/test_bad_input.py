"""Bad input stops the playbook with a message that says what to do, before the cluster changes.

Each case runs the scenario's converge playbook (both roles, their checks first) in a namespace
of its own that does not exist, and then checks that it still does not: the roles create their
namespace before anything else, so any change would show there.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from conftest import kubectl_json, run_converge


class BadInput(NamedTuple):
    id: str
    namespace: str
    extra_vars: dict[str, object]
    message: str


CASES = [
    BadInput(
        "client-cn-differs-from-database-user",
        "bk8s-bad-input-cn",
        {"pki_backstage_client_common_name": "backstage"},
        "pki_backstage_client_common_name 'backstage' differs from pki_database_user 'postgres'",
    ),
    BadInput(
        "renew-after-not-less-than-ttl",
        "bk8s-bad-input-renew",
        {"pki_leaf_ttl_days": 45, "pki_leaf_renew_after_days": 45},
        "pki_leaf_renew_after_days (45) must be at least 1 and less than pki_leaf_ttl_days (45)",
    ),
    BadInput(
        "invalid-namespace-name",
        "Backstage_NS",
        {},
        "'Backstage_NS' is not a namespace for Backstage",
    ),
    BadInput(
        "storage-class-does-not-exist",
        "bk8s-bad-input-storage",
        {"postgres_storage_class": "no-such-storage-class"},
        "StorageClass 'no-such-storage-class' does not exist in the cluster",
    ),
]


def namespaces() -> set[str]:
    return {item["metadata"]["name"] for item in kubectl_json("get", "namespaces")["items"]}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly_before_anything_changes(case: BadInput) -> None:
    assert case.namespace not in namespaces()
    extra_vars = {
        "pki_namespace": case.namespace,
        "postgres_namespace": case.namespace,
        # Never reached: the checks stop the run first.
        "postgres_image": "backstage-k8s/postgres:never-used",
        **case.extra_vars,
    }
    result = run_converge(extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case.id}: the playbook succeeded:\n{output}"
    # Ansible folds long messages; compare with whitespace collapsed.
    assert case.message in " ".join(output.split()), f"{case.id}: no clear message:\n{output}"
    # The roles create their namespace before anything else; other tests may be making
    # namespaces of their own on the shared cluster meanwhile, so look only at this one.
    assert case.namespace not in namespaces(), f"{case.id}: the namespace was created"
