"""The postgres role and PostgreSQL major versions: site.yml with an image of another major
version than the data directory's PG_VERSION (17 on 15's data) is refused with the reason and
PostgreSQL keeps running, untouched; with postgres_upgrade=true it backs up, moves to a new volume
on 17, restores, and the catalog is the same, the old volume kept; a re-run changes nothing."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from conftest import COLLECTIONS_PATH, faults, log
from test_backup_restore import entities
from testcluster import REPO, ansible_env, ansible_playbook

POSTGRES_SELECTOR = "app.kubernetes.io/name=postgres"


@pytest.fixture(scope="module")
def postgres_17(deployment: Any) -> str:
    """The PostgreSQL 17 test image (Debian trixie), built or reused, imported into the cluster."""
    built = subprocess.run([str(REPO / "tests" / "images" / "build"), "postgres-17"], capture_output=True, text=True,
                           check=True, timeout=1800).stdout.split()
    archive, reference = built[-2], built[-1]
    deployment.cluster.ctr("images", "import", archive)
    return reference


def server_major(deployment: Any) -> int:
    return int(deployment.query("SHOW server_version_num")["rows"][0][0]) // 10000


def postgres_state(deployment: Any) -> dict[str, Any]:
    pod = deployment.postgres_pod()
    statefulset = deployment.get("statefulset", "postgres")
    return {"pod": pod["metadata"]["uid"], "restarts": sum(c["restartCount"] for c in pod["status"]["containerStatuses"]),
            "generation": statefulset["metadata"]["generation"],
            "image": statefulset["spec"]["template"]["spec"]["containers"][0]["image"]}


def test_an_image_of_another_major_version_is_refused_and_postgres_keeps_running(deployment: Any, postgres_17: str) -> None:
    assert server_major(deployment) == 15
    before = postgres_state(deployment)
    variables = {"faults_namespace": deployment.namespace, "faults_ingress_host": deployment.host,
                 **faults.BASE_VARS, "postgres_image": postgres_17}
    result = ansible_playbook(str(REPO / "tests" / "faults" / "deploy.yml"), "-e", json.dumps(variables),
                              env=ansible_env(COLLECTIONS_PATH, base=deployment.cluster.process_env), timeout=1200)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "was made by PostgreSQL 15, and postgres_image '" + postgres_17 + "' is PostgreSQL 17" in output
    assert "set postgres_upgrade=true" in output
    assert postgres_state(deployment) == before
    assert server_major(deployment) == 15
    assert deployment.answers()


def test_an_upgrade_from_15_to_17_keeps_the_catalog_and_the_old_volume(deployment: Any, postgres_17: str) -> None:
    before = {"entities": entities(deployment), "locations": deployment.location_targets()}
    old_claim = deployment.get("pvc", "data-postgres-0")["metadata"]["uid"]
    recap = deployment.deploy("lifecycle-upgrade", postgres_image=postgres_17, postgres_upgrade=True)
    assert "Upgraded from PostgreSQL 15 to 17 through backup" in recap.output
    deployment.wait_until_answering(300)
    deployment._token = None
    assert server_major(deployment) == 17
    assert entities(deployment) == before["entities"]
    assert deployment.location_targets() == before["locations"]
    assert deployment.get("pvc", "data-postgres-0")["metadata"]["uid"] == old_claim
    assert deployment.get("pvc", "data-pg17-postgres-0")["status"]["phase"] == "Bound"
    again = deployment.deploy("lifecycle-upgrade-again", postgres_image=postgres_17, postgres_upgrade=True)
    assert again.site_changes == []
    log("upgrade from 15 to 17 done; a re-run changed nothing")
