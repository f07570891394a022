"""backstage.k8s.k8s_get against the scenario's namespace: several reads at once, each in its
order, and a Secret read with secret_keys comes back without its private key."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from conftest import (
    CLIENT_SECRET,
    NAMESPACE,
    STATEFULSET,
    ansible_env,
    ansible_playbook,
    kubectl_json,
    secret_data,
)


def _read(tmp_path: Path, objects: list[dict[str, Any]], secret_keys: list[str]) -> tuple[dict[str, Any], str]:
    playbook = tmp_path / "read.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Read", "backstage.k8s.k8s_get": {
            "namespace": NAMESPACE, "objects": objects, "secret_keys": secret_keys}, "register": "reads"}],
    }]))
    # The whole result, as a callback gets it: a key that came back would be in it.
    env = dict(ansible_env(repo_config=False), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    result = ansible_playbook("-i", "localhost,", "-e", json.dumps({"ansible_python_interpreter": sys.executable}),
                              str(playbook), env=env, timeout=300, cwd=None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    return task["hosts"]["localhost"], result.stdout + result.stderr


def test_reads_come_back_in_their_order_and_a_secret_with_only_the_keys_asked_for(tmp_path: Path) -> None:
    client = kubectl_json("-n", NAMESPACE, "get", "secret", CLIENT_SECRET)
    label, value = next(iter(client["metadata"]["labels"].items()))
    objects = [
        {"kind": "Secret", "name": CLIENT_SECRET},
        {"api_version": "apps/v1", "kind": "StatefulSet", "name": STATEFULSET},
        {"kind": "Secret", "name": "no-such-secret"},
        {"api_version": "example.invalid/v1", "kind": "NoSuchKind"},
        # Listed objects carry no kind of their own: these are Secrets all the same.
        {"kind": "Secret", "label_selectors": [f"{label}={value}"]},
    ]

    reads, output = _read(tmp_path, objects, ["tls.crt", "ca.crt"])

    results = reads["results"]
    assert [r["item"]["kind"] for r in results] == [o["kind"] for o in objects]
    assert all(r["item"]["namespace"] == NAMESPACE for r in results)
    secret = results[0]["resources"][0]
    assert set(secret["data"]) == {"tls.crt", "ca.crt"}
    assert base64.b64decode(secret["data"]["tls.crt"]) == secret_data(CLIENT_SECRET)["tls.crt"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (secret["metadata"].get("annotations") or {})
    assert [s["kind"] for s in results[1]["resources"]] == ["StatefulSet"]
    assert results[2] | {"item": None} == {"item": None, "api_found": True, "resources": []}
    assert results[3]["api_found"] is False and results[3]["resources"] == []
    listed = results[4]["resources"]
    assert CLIENT_SECRET in [s["metadata"]["name"] for s in listed]
    assert all(set(s.get("data") or {}) <= {"tls.crt", "ca.crt"} for s in listed)
    key = secret_data(CLIENT_SECRET)["tls.key"]
    assert "PRIVATE KEY" not in output and base64.b64encode(key).decode() not in output


def test_no_keys_asked_for_says_whether_a_secret_exists_and_nothing_more(tmp_path: Path) -> None:
    reads, output = _read(tmp_path, [{"kind": "Secret", "name": CLIENT_SECRET}], [])

    secret = reads["results"][0]["resources"][0]
    assert secret["metadata"]["name"] == CLIENT_SECRET and not secret.get("data")
    assert base64.b64encode(secret_data(CLIENT_SECRET)["ca.crt"]).decode() not in output
