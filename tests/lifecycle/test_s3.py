"""Backups to an S3-compatible bucket: a real SeaweedFS S3 server (tests/s3/build-seaweedfs, run
on this host where the cluster's pods reach it) gets each backup after it is complete in the
volume; restore.yml restores from the bucket; a backup name the bucket does not have is refused."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import COLLECTIONS_PATH, run_playbook
from test_backup_restore import backup
from testcluster import REPO, ansible_env, ansible_playbook, wait_until

sys.path.insert(0, str(REPO / "roles" / "postgres_backup" / "files"))
import s3  # noqa: E402  (the role's own client, to look into the bucket)

BUCKET = "backstage-backups"
PREFIX = "lifecycle"
CREDENTIALS = "backup-s3-credentials"


@pytest.fixture(scope="module")
def s3_server(deployment: Any) -> Iterator[dict[str, str]]:
    """`weed server -s3` with a fresh data directory and credentials of its own, listening on the
    host's end of the test cluster's link (instance-specific ports)."""
    weed = subprocess.run([str(REPO / "tests" / "s3" / "build-seaweedfs")], capture_output=True, text=True,
                          check=True, timeout=3600).stdout.strip()
    host = deployment.cluster.env["TESTCLUSTER_NODE_IP"].rsplit(".", 1)[0] + ".1"
    base = 20000 + 100 * deployment.cluster.instance
    keys = {"AWS_ACCESS_KEY_ID": "backup" + secrets.token_hex(6), "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20)}
    work = Path(tempfile.mkdtemp(prefix="bk8s-s3-"))
    (work / "data").mkdir()
    (work / "s3.json").write_text(json.dumps({"identities": [{
        "name": "backup", "credentials": [{"accessKey": keys["AWS_ACCESS_KEY_ID"], "secretKey": keys["AWS_SECRET_ACCESS_KEY"]}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    with open(work / "weed.log", "w") as output:
        process = subprocess.Popen(
            [weed, "server", f"-dir={work / 'data'}", f"-ip={host}", f"-ip.bind={host}", f"-master.port={base + 33}",
             # Small volumes, and room for several: each collection (bucket) takes volumes of its own.
             f"-volume.port={base + 80}", "-volume.max=30", "-master.volumeSizeLimitMB=64", "-filer", f"-filer.port={base + 88}", "-s3",
             f"-s3.port={base + 34}", f"-s3.config={work / 's3.json'}"], stdout=output, stderr=subprocess.STDOUT)
    endpoint = f"http://{host}:{base + 34}"
    env = {"S3_ENDPOINT": endpoint, "S3_BUCKET": BUCKET, "S3_PREFIX": PREFIX, **keys}
    os.environ.update(env)
    try:
        def bucket_made() -> str:
            try:
                status, body = s3.Bucket().request("PUT")
                return "made" if status in (200, 409) else f"HTTP {status} {body[:200]!r}"
            except OSError as error:
                return str(error)
        wait_until("the S3 server to make the bucket", bucket_made, 120, 1, until=lambda seen: seen == "made")
        yield env
    finally:
        process.terminate()
        process.wait(30)
        shutil.copy(work / "weed.log", REPO / "artifacts" / "lifecycle" / "weed.log")
        shutil.rmtree(work, ignore_errors=True)
        for name in env:
            os.environ.pop(name, None)


def s3_variables(env: dict[str, str]) -> dict[str, Any]:
    return {"postgres_backup_s3": {"endpoint": env["S3_ENDPOINT"], "bucket": BUCKET, "prefix": PREFIX,
                                   "credentials_secret": CREDENTIALS, "retention": 2}}


def apply_backup_role(deployment: Any, **variables: Any) -> None:
    extra = {"faults_namespace": deployment.namespace, "faults_ingress_host": deployment.host, **variables}
    result = ansible_playbook(str(REPO / "tests" / "faults" / "deploy.yml"), "-e", json.dumps(extra), "--tags", "postgres_backup",
                              env=ansible_env(COLLECTIONS_PATH, base=deployment.cluster.process_env), timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:]


def test_backups_go_to_the_bucket_and_restore_from_it(deployment: Any, s3_server: dict[str, str]) -> None:
    deployment.kubectl.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CREDENTIALS},
                              "stringData": {k: s3_server[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}})
    variables = s3_variables(s3_server)
    apply_backup_role(deployment, **variables)
    try:
        names = [backup(deployment, f"backup-s3-{n}") for n in range(3)]
        assert s3.Bucket().backups() == names[1:], "the bucket keeps the newest two (retention 2)"
        image = deployment.get("cronjob", "postgres-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
        locations = deployment.location_targets()
        run = run_playbook("restore-s3", "restore", {"backstage_k8s_namespace": deployment.namespace, **variables,
                                                     "postgres_backup_restore_from": "s3", "postgres_backup_s3_image": image},
                           cluster=deployment.cluster).assert_ok()
        assert f"downloaded {names[-1]} from s3://{BUCKET}/{PREFIX}/{names[-1]}" in run.output
        assert f"RESTORED={names[-1]}" in run.output
        deployment.wait_until_answering(300)
        deployment._token = None
        assert deployment.location_targets() == locations

        refused = run_playbook("restore-s3-missing", "restore", {
            "backstage_k8s_namespace": deployment.namespace, **variables, "postgres_backup_restore_from": "s3",
            "postgres_backup_s3_image": image, "postgres_backup_restore_name": names[0]}, cluster=deployment.cluster)
        assert refused.returncode != 0
        assert f"Nothing was changed: there is no backup {names[0]} in s3://{BUCKET}/{PREFIX}" in " ".join(refused.output.split())
    finally:
        apply_backup_role(deployment)
        deployment.kubectl("delete", "secret", CREDENTIALS, "--ignore-not-found")
