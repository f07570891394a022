"""No private key leaves its Secret: not into the output of site.yml or rotate.yml at -vvv, not
into the rotation Job's log, not into the controller's temporary directories, not when a task
that holds a key fails, and not when a run is killed while it holds one.

The key-handling tasks are made to fail for real: a ValidatingAdmissionPolicy of the test's own
refuses every write to the client certificate's Secret, so the pki role's write fails in
site.yml and in the rotation Job. Every private key the namespace's Secrets held at any point of
the test is searched for as its PEM lines, the base64 of its DER and the base64 the Secret keeps;
the outputs and the Job log are also searched for any PEM private key at all (a key issued in
memory whose write was refused is in no Secret). Runs last in the scenario (file order): it
rotates the certificates, and its last run, a forced rotation that succeeds, leaves them
consistent."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import SCENARIO_DIR, Rotate
from testcluster import ANSIBLE_PLAYBOOK, CLIENT_SECRET, REPO, Kubectl, ansible_env, venv_collections_path

CONVERGE = (str(SCENARIO_DIR / "converge.yml"), "-i", str(SCENARIO_DIR / "inventory"))
DENY_POLICY = "test-secrecy-deny-client-secret-writes"
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Where a controller run could leave files: Ansible's local and remote temporary directories
# (~/.ansible/tmp for both by default) and the system's.
CONTROLLER_TEMP_DIRS = (Path.home() / ".ansible" / "tmp", Path(tempfile.gettempdir()))
LARGEST_FILE_SCANNED = 50 * 1024 * 1024


class Keys:
    """Every private key the namespace's Secrets held when looked at, as strings to search for."""

    def __init__(self, kubectl: Kubectl) -> None:
        self._kubectl = kubectl
        self.needles: dict[str, str] = {}

    def collect(self) -> None:
        for secret in self._kubectl.get("secrets")["items"]:
            for key, value in (secret.get("data") or {}).items():
                pem = base64.b64decode(value).decode(errors="replace")
                if not PEM_PRIVATE_KEY.search(pem):
                    continue
                where = f"{secret['metadata']['name']}/{key}"
                body = [line for line in pem.strip().splitlines() if line and not line.startswith("-----")]
                self.needles[value] = f"{where} as the Secret's base64"
                self.needles["".join(body)] = f"{where} as the base64 of its DER"
                for line in body:
                    # Short last lines could match by chance.
                    if len(line) >= 40:
                        self.needles[line] = f"{where} as a PEM line"

    def found_in(self, text: str) -> list[str]:
        return sorted({what for needle, what in self.needles.items() if needle in text})


def deny_client_secret_writes(kubectl: Kubectl, namespace: str) -> list[dict]:
    match = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
             "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                "resources": ["secrets"], "resourceNames": [CLIENT_SECRET]}]}
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": DENY_POLICY},
         "spec": {"failurePolicy": "Fail", "matchConstraints": match,
                  "validations": [{"expression": "false", "message": "writes refused by the secrecy test"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": DENY_POLICY},
         "spec": {"policyName": DENY_POLICY, "validationActions": ["Deny"]}},
    ]


def job_logs(kubectl: Kubectl) -> str:
    """The log of every rotation Job pod still in the namespace."""
    pods = kubectl.get("pods", "-l", "batch.kubernetes.io/job-name")["items"]
    return "\n".join(kubectl("logs", pod["metadata"]["name"], "--all-containers", check=False) for pod in pods)


def files_written_since(started: float) -> Iterator[Path]:
    own_scenario = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]).name
    for top in CONTROLLER_TEMP_DIRS:
        for directory, dirs, files in os.walk(top):
            # Another Molecule scenario's directory belongs to another test run (make test runs
            # the laptop scenario beside this one, its test rig's microk8s CA in there).
            dirs[:] = [d for d in dirs if not d.startswith("molecule.") or d == own_scenario]
            for name in files:
                path = Path(directory) / name
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink() and info.st_mtime >= started \
                        and info.st_size <= LARGEST_FILE_SCANNED:
                    yield path


def failed_task(output: str) -> str:
    """The name of the task a run failed in (without its role), '' when none failed."""
    task = ""
    for line in output.splitlines():
        header = re.match(r"TASK \[(?:[\w.]+ : )?(.*)\] \*", line)
        if header:
            task = header[1]
        elif line.startswith("fatal:"):
            return task
    return ""


def site_pki(*extra: str) -> list[str]:
    return [ANSIBLE_PLAYBOOK, *CONVERGE, "--tags", "pki", "-e", "pki_force_rotation=true", "-vvv", *extra]


def converge_env() -> dict[str, str]:
    return {"MOLECULE_PROJECT_DIRECTORY": str(REPO), **ansible_env(venv_collections_path())}


@pytest.fixture(scope="module")
def keys(kubectl: Kubectl) -> Keys:
    found = Keys(kubectl)
    found.collect()
    return found


def test_no_private_key_reaches_output_job_logs_or_the_controllers_disk(
        kubectl: Kubectl, namespace: str, rotate: Rotate, keys: Keys, artifacts: Path) -> None:
    started = time.time()
    outputs: dict[str, str] = {}

    # A key-handling task fails: the client Secret's write is refused, in site.yml and in the Job.
    policy = deny_client_secret_writes(kubectl, namespace)
    kubectl.apply(policy)
    try:
        # A new policy takes a moment to reach the API server's admission chain.
        time.sleep(5)
        refused = subprocess.run(site_pki(), capture_output=True, text=True, env=converge_env(), cwd=REPO,
                                 timeout=900, check=False)
        outputs["site.yml, write refused"] = refused.stdout + refused.stderr
        assert failed_task(outputs["site.yml, write refused"]) == f"Store the certificate in the Secret {CLIENT_SECRET}", \
            "site.yml should have failed where it writes the client certificate and key"
        keys.collect()
        failed_job = rotate("-vvv", "-e", "cert_rotation_force=true", check=False, log_name="secrecy-refused")
        outputs["rotate.yml, write refused"] = failed_job.stdout + failed_job.stderr
        assert failed_job.returncode != 0 and "failed; its log is above" in outputs["rotate.yml, write refused"], \
            "the rotation Job should have failed on the refused Secret write"
        keys.collect()
    finally:
        for item in reversed(policy):
            kubectl("delete", item["kind"].lower(), item["metadata"]["name"], "--ignore-not-found",
                    namespaced=False)
    outputs["rotation Job logs, write refused"] = job_logs(kubectl)

    # A run killed while it holds a new key, before it stores it.
    killed = subprocess.Popen(site_pki(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=converge_env(), cwd=REPO, start_new_session=True)
    lines: list[str] = []
    assert killed.stdout is not None
    for line in killed.stdout:
        lines.append(line)
        if line.startswith("TASK [backstage.k8s.pki : Sign with the CA the certificate of"):
            os.killpg(killed.pid, signal.SIGKILL)
            break
    killed.wait(timeout=60)
    lines.extend(killed.stdout.readlines())
    outputs["site.yml, killed"] = "".join(lines)
    assert killed.returncode == -signal.SIGKILL, "the run should have been killed while issuing"

    # A forced rotation that succeeds, at -vvv: the trigger prints the Job's log on the controller.
    done = rotate("-vvv", "-e", "cert_rotation_force=true", log_name="secrecy-forced")
    outputs["rotate.yml, forced"] = done.stdout + done.stderr
    outputs["rotation Job logs"] = job_logs(kubectl)
    keys.collect()

    (artifacts / "secrecy-outputs.json").write_text(json.dumps(outputs))
    assert len(keys.needles) >= 9, "the namespace should hold at least three private keys"
    leaks = {name: keys.found_in(text) for name, text in outputs.items()}
    leaks.update({name: ["a PEM private key"] for name, text in outputs.items() if PEM_PRIVATE_KEY.search(text)})
    scanned = []
    for path in files_written_since(started):
        scanned.append(str(path))
        text = path.read_bytes().decode(errors="replace")
        found = keys.found_in(text)
        if path.is_relative_to(CONTROLLER_TEMP_DIRS[0]) and PEM_PRIVATE_KEY.search(text):
            found.append("a PEM private key")
        if found:
            leaks[str(path)] = found
    (artifacts / "secrecy-files-scanned.json").write_text(json.dumps(scanned))
    leaks = {name: found for name, found in leaks.items() if found}
    assert not leaks, f"private keys outside their Secrets: {leaks}"
