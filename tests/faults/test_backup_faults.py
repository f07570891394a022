"""Backups under faults: a backup Job killed mid-way leaves the earlier backups usable and the next
run completes; a backup volume that fills up makes the backup fail loudly (backup.yml fails, the
Job is Failed) and keeps the previous backup, which still restores."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import COLLECTIONS_PATH, Deployment, log, write_artifact
from testcluster import ansible_env, ansible_playbook, wait_until

FILLER = "lifecycle_filler"
# Rows of hardly compressible text in the postgres database: enough that its dump takes seconds
# (a kill lands while it is being written) and is larger than the small volume.
FILLER_ROWS = 1_500_000


def playbook(deployment: Deployment, name: str, log_name: str, **variables: Any) -> tuple[int, str]:
    extra = {"backstage_k8s_kubeconfig": deployment.cluster.env["KUBECONFIG"],
             "backstage_k8s_namespace": deployment.namespace, **variables}
    started = time.monotonic()
    result = ansible_playbook(f"backstage.k8s.{name}", "-e", json.dumps(extra),
                              env=ansible_env(COLLECTIONS_PATH, base=deployment.cluster.process_env), timeout=1800)
    output = result.stdout + result.stderr
    write_artifact(f"{log_name}.log", output)
    log(f"{name}.yml ({log_name}): exit {result.returncode} in {time.monotonic() - started:.0f} s")
    return result.returncode, output


def backup_name(output: str) -> str:
    return next(line.split("BACKUP_NAME=")[1].strip(' "\',') for line in output.splitlines() if "BACKUP_NAME=" in line)


def make_filler(deployment: Deployment) -> None:
    """The filler table, written in parts: each statement within the helper's 10 s read timeout on
    a busy machine."""
    deployment.query(f"DROP TABLE IF EXISTS {FILLER}; CREATE TABLE {FILLER} (g int, t text)")
    step = 100_000
    for start in range(1, FILLER_ROWS + 1, step):
        deployment.query(f"INSERT INTO {FILLER} SELECT g, md5(g::text) || md5((g * 7)::text)"
                         f" FROM generate_series({start}, {start + step - 1}) g")


@pytest.fixture()
def filler(deployment: Deployment) -> Iterator[None]:
    make_filler(deployment)
    yield
    deployment.query(f"DROP TABLE IF EXISTS {FILLER}")


def test_a_killed_backup_leaves_the_earlier_ones_usable_and_the_next_run_completes(deployment: Deployment,
                                                                                   filler: None) -> None:
    rc, output = playbook(deployment, "backup", "backup-before-kill")
    assert rc == 0, output[-3000:]
    earlier = backup_name(output)
    job = f"killed-{uuid.uuid4().hex[:6]}"
    deployment.kubectl("create", "job", job, "--from=cronjob/postgres-backup")

    def log_of_job() -> str:
        return deployment.kubectl.run("logs", f"job/{job}", check=False).stdout

    # Killed while the last database (postgres, with the filler) is being dumped.
    wait_until("the backup Job to dump its last database", log_of_job, 180, 0.5,
               until=lambda text: "dumped backstage_plugin_proxy" in text)
    assert "wrote" not in log_of_job()
    deployment.kubectl("delete", "pod", "-l", f"batch.kubernetes.io/job-name={job}", "--grace-period=0", "--force")
    wait_until("the killed Job to fail", lambda: deployment.get("job", job).get("status", {}).get("failed", 0), 120)

    rc, output = playbook(deployment, "backup", "backup-after-kill")
    assert rc == 0, output[-3000:]
    latest = backup_name(output)
    assert f"kept: {earlier} {latest}" in output or (earlier in output and latest in output)
    for name in (earlier, latest):
        rc, output = playbook(deployment, "restore", f"restore-after-kill-{name}", postgres_backup_restore_name=name)
        assert rc == 0, output[-3000:]
    deployment.wait_until_answering(300)
    deployment._token = None


@pytest.fixture()
def small_volume(deployment: Deployment) -> Iterator[str]:
    """A real 24 MiB file system (tmpfs) as a PersistentVolume of a storage class of its own: a
    backup volume that really fills up (the test cluster's local-path volumes have no size limit)."""
    path = Path(f"/run/backstage-k8s-small-backups-{deployment.cluster.instance}")
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0777", "tmpfs", str(path)], check=True)
    name, klass = "lifecycle-small-backups", "backstage-k8s-small"
    deployment.cluster.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                              "spec": {"capacity": {"storage": "24Mi"}, "accessModes": ["ReadWriteOnce"],
                                       "storageClassName": klass, "persistentVolumeReclaimPolicy": "Retain",
                                       "hostPath": {"path": str(path), "type": "Directory"}}})
    yield klass
    deployment.kubectl("delete", "cronjob/small-backup", "configmap/small-backup-scripts", "networkpolicy/small-backup-postgres",
                       "--ignore-not-found")
    deployment.kubectl("delete", "jobs", "-l", "app.kubernetes.io/name=postgres-backup", "--wait=true", timeout=120)
    deployment.kubectl("delete", "pvc", "small-backup", "--ignore-not-found", "--wait=true", timeout=120)
    deployment.kubectl("delete", "pv", name, "--ignore-not-found", namespaced=False)
    subprocess.run(["umount", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_a_full_backup_volume_fails_the_backup_loudly_and_keeps_the_previous_one(deployment: Deployment,
                                                                                 small_volume: str) -> None:
    variables = {"postgres_backup_name": "small-backup", "postgres_backup_storage_class": small_volume,
                 "postgres_backup_storage_size": "24Mi"}
    extra = {"faults_namespace": deployment.namespace, "faults_ingress_host": deployment.host, **variables}
    result = ansible_playbook(str(Path(__file__).with_name("deploy.yml")), "-e", json.dumps(extra), "--tags", "postgres_backup",
                              env=ansible_env(COLLECTIONS_PATH, base=deployment.cluster.process_env), timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:]
    rc, output = playbook(deployment, "backup", "backup-small", **variables)
    assert rc == 0, output[-3000:]
    previous = backup_name(output)

    make_filler(deployment)
    try:
        rc, output = playbook(deployment, "backup", "backup-small-full", **variables)
    finally:
        deployment.query(f"DROP TABLE IF EXISTS {FILLER}")
    assert rc != 0
    assert "The backup Job failed" in output
    assert "No space left on device" in output
    assert "FAILED (exit" in output and "the earlier backups are kept" in output
    failed = [j for j in deployment.get("jobs", "-l", "app.kubernetes.io/name=postgres-backup")["items"]
              if j["metadata"]["name"].startswith("small-backup-") and j.get("status", {}).get("failed")]
    assert failed, "no failed backup Job"

    rc, output = playbook(deployment, "restore", "restore-small-previous", postgres_backup_restore_name=previous,
                          **variables)
    assert rc == 0, output[-3000:]
    assert f"RESTORED={previous}" in output
    deployment.wait_until_answering(300)
    deployment._token = None
