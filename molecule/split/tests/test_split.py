"""Plugins in separate pods: the example app's plugins split over a gateway, a core backend (auth,
catalog, proxy), a scaffolder and a search backend, all from one image, reached through the Ingress
as a user's browser reaches them. The tests run in file order: the later ones reuse the scaffolder
task of the first and move the deployment to one backend and back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from conftest import SCENARIO_DIR
from testcluster import (
    REPO, Kubectl, Response, ansible_env, ansible_playbook, certificate_user, cluster_env, http_request,
    play_recap, postgres_query, run_rotate, venv_collections_path, wait_until,
)
from ansible_collections.backstage.k8s.plugins.module_utils._postgres_tls import PostgresTlsError

INSTANCE = "backstage"
GATEWAY = f"{INSTANCE}-backend-gateway"
SINGLE = f"{INSTANCE}-backend"
BACKEND = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"
CLIENT_SECRET = "backstage-postgres-client-tls"
SERIAL_RECORD = "backstage.k8s/postgres-client-certificate-serial"
# converge.yml as Molecule runs it, with the scenario's inventory (its settings are group_vars).
CONVERGE = (str(SCENARIO_DIR.parent / "cluster" / "converge.yml"), "-i", str(SCENARIO_DIR / "inventory"))
TASK_TIMEOUT = 180
SEARCH_TIMEOUT = 240

Ingress = Callable[..., Response]


def deployment_name(backend: dict[str, Any]) -> str:
    return f"{INSTANCE}-backend-{backend['name']}"


def client_secret(backend: dict[str, Any]) -> str:
    return f"{CLIENT_SECRET}-{backend['name']}"


def database_role(backend: dict[str, Any]) -> str:
    return f"backstage_{backend['name']}"


def client_of(kubectl: Kubectl, backend: dict[str, Any]) -> dict[str, str]:
    return {key: value.decode() for key, value in kubectl.secret(client_secret(backend)).items()}


def converge(tmp_path: Path, *extra: str) -> dict[str, int]:
    env = {"MOLECULE_PROJECT_DIRECTORY": str(REPO), **ansible_env(str(tmp_path))}
    result = ansible_playbook(*CONVERGE, *extra, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    return play_recap(result.stdout)


def backend_deployments(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in kubectl.get("deployment", "-l", BACKEND)["items"]}


def rolled_out(deployment: dict[str, Any]) -> bool:
    status, wanted = deployment.get("status", {}), deployment["spec"]["replicas"]
    return (status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == wanted == status.get("readyReplicas", 0)
            and status.get("replicas", 0) == wanted)


def task_of(ingress: Ingress, token: str, task_id: str) -> dict[str, Any]:
    response = ingress(f"/api/scaffolder/v2/tasks/{task_id}", token=token)
    assert response.status == 200, response
    return response.json()


def catalog_names(ingress: Ingress, token: str) -> set[str]:
    response = ingress("/api/catalog/entities/by-query?limit=100", token=token)
    assert response.status == 200, response
    return {item["metadata"]["name"] for item in response.json()["items"]}


# --------------------------------------------------------------------------- the objects


def test_each_backend_runs_its_replicas_with_its_plugins(kubectl: Kubectl, scenario: dict[str, Any]) -> None:
    deployments = backend_deployments(kubectl)
    assert set(deployments) == {deployment_name(backend) for backend in scenario["backstage_k8s_backends"]}
    for backend in scenario["backstage_k8s_backends"]:
        deployment = deployments[deployment_name(backend)]
        assert deployment["spec"]["replicas"] == backend.get("replicas", 2)
        assert rolled_out(deployment), deployment["status"]
        env = {item["name"]: item.get("value") for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["BACKSTAGE_BACKEND_PLUGINS"] == ",".join(backend["plugins"])


def test_each_backend_connects_as_its_own_role_with_its_own_certificate(
    kubectl: Kubectl, scenario: dict[str, Any]
) -> None:
    backends, deployments = scenario["backstage_k8s_backends"], backend_deployments(kubectl)
    serials = {}
    for backend in backends:
        pod = deployments[deployment_name(backend)]["spec"]["template"]["spec"]
        [volume] = [item for item in pod["volumes"] if item["name"] == "postgres-client-tls"]
        assert volume["secret"]["secretName"] == client_secret(backend)
        env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
        assert env["BACKSTAGE_DATABASE_USER"] == database_role(backend)
        client = client_of(kubectl, backend)
        assert certificate_user(client["tls.crt"]) == database_role(backend)
        serials[database_role(backend)] = str(kubectl.certificate(client_secret(backend)).serial_number)
    assert len(set(serials.values())) == len(backends)
    # PostgreSQL's own view: every backend with a database of its own is connected as its role,
    # with its certificate (the gateway keeps no data).
    rows = postgres_query(kubectl, "SELECT DISTINCT a.usename, s.client_serial::text FROM pg_stat_ssl s"
                                   " JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL")["rows"]
    connected = {role: serial for role, serial in rows if role in serials}
    for role in ("backstage_core", "backstage_scaffolder", "backstage_search"):
        assert connected.get(role) == serials[role], (role, rows)


def test_one_backends_role_cannot_read_another_plugins_tables(kubectl: Kubectl, scenario: dict[str, Any]) -> None:
    by_name = {backend["name"]: backend for backend in scenario["backstage_k8s_backends"]}
    count = "SELECT count(*) FROM final_entities"
    rows = postgres_query(kubectl, count, database="backstage_plugin_catalog",
                          client=client_of(kubectl, by_name["core"]))
    assert int(rows["rows"][0][0]) > 0, rows
    for other in ("scaffolder", "search", "gateway"):
        try:
            result = postgres_query(kubectl, count, database="backstage_plugin_catalog",
                                    client=client_of(kubectl, by_name[other]))
        except PostgresTlsError as exc:
            assert "permission denied" in str(exc), exc
        else:
            raise AssertionError(f"{other} read the catalog's table: {result}")


def test_every_backend_finds_every_plugin_at_the_service_that_hosts_it(
    kubectl: Kubectl, namespace: str, scenario: dict[str, Any]
) -> None:
    config_map = kubectl.get("configmap", f"{INSTANCE}-app-config")
    config = yaml.safe_load(config_map["data"]["app-config.k8s.yaml"])
    endpoints = {plugin: endpoint["target"] for endpoint in config["discovery"]["endpoints"]
                 for plugin in endpoint["plugins"]}
    for backend in scenario["backstage_k8s_backends"]:
        for plugin in backend["plugins"]:
            assert endpoints[plugin]["internal"] == (
                f"http://{deployment_name(backend)}.{namespace}.svc:7007/api/{{{{pluginId}}}}")
            assert endpoints[plugin]["external"] == config["backend"]["baseUrl"] + "/api/{{pluginId}}"
    services = {item["metadata"]["name"]: item for item in kubectl.get("service", "-l", BACKEND)["items"]}
    for backend in scenario["backstage_k8s_backends"]:
        assert services[deployment_name(backend)]["spec"]["selector"]["backstage.k8s/backend"] == backend["name"]


def test_a_backend_serves_only_its_own_plugins(kubectl: Kubectl, guest_token: str) -> None:
    # Straight to each backend's Service, past the gateway: the core backend has no scaffolder, and
    # the scaffolder's backend no catalog.
    def status(service: str, path: str) -> int:
        with kubectl.port_forward(f"svc/{service}", 7007) as port:
            return http_request(f"http://127.0.0.1:{port}{path}", token=guest_token, timeout=10).status

    assert status(f"{INSTANCE}-backend-core", "/api/catalog/entities?limit=1") == 200
    assert status(f"{INSTANCE}-backend-core", "/api/scaffolder/v2/actions") == 404
    assert status(f"{INSTANCE}-backend-scaffolder", "/api/scaffolder/v2/actions") == 200
    assert status(f"{INSTANCE}-backend-scaffolder", "/api/catalog/entities?limit=1") == 404


def test_the_ingress_sends_the_backend_paths_to_the_gateway(kubectl: Kubectl) -> None:
    ingress = kubectl.get("ingress", INSTANCE)
    routes = {path["path"]: path["backend"]["service"]["name"]
              for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert routes == {"/api": GATEWAY, "/.backstage": GATEWAY, "/": f"{INSTANCE}-frontend"}


def test_each_backend_admits_only_the_other_backends_but_the_gateway_everyone(
    kubectl: Kubectl, scenario: dict[str, Any]
) -> None:
    policies = {item["metadata"]["name"]: item["spec"] for item in kubectl.get("networkpolicy")["items"]}
    for backend in scenario["backstage_k8s_backends"]:
        policy = policies[deployment_name(backend)]
        assert policy["podSelector"]["matchLabels"]["backstage.k8s/backend"] == backend["name"]
        assert policy["policyTypes"] == ["Ingress"]
        [rule] = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": 7007}]
        if "gateway" in backend["plugins"]:
            assert "from" not in rule
        else:
            assert rule["from"] == [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/name": "backstage", "app.kubernetes.io/instance": INSTANCE,
                "app.kubernetes.io/component": "backend"}}}]


# --------------------------------------------------------------------------- through the Ingress


def test_the_scaffolder_runs_a_template_it_reads_from_the_catalog_in_another_pod(
    ingress: Ingress, guest_token: str, scaffolder_task: dict[str, str]
) -> None:
    wait_until("the example template in the catalog",
               lambda: ingress("/api/catalog/entities/by-name/template/default/example-service", token=guest_token),
               120, 2, until=lambda response: response.status == 200)
    response = ingress("/api/scaffolder/v2/tasks", method="POST", token=guest_token, body={
        "templateRef": "template:default/example-service",
        "values": {"name": "split-service", "description": "made across pods"}})
    assert response.status == 201, response
    task_id = response.json()["id"]
    task = wait_until("the scaffolder task to finish", lambda: task_of(ingress, guest_token, task_id),
                      TASK_TIMEOUT, 2, until=lambda seen: seen["status"] in ("completed", "failed", "cancelled"))
    assert task["status"] == "completed", task
    scaffolder_task["id"] = task_id


def test_search_returns_catalog_entities_indexed_by_the_search_backend(ingress: Ingress, guest_token: str) -> None:
    def titles() -> set[str]:
        response = ingress("/api/search/query?term=example", token=guest_token)
        return {result["document"]["title"] for result in response.json()["results"]} if response.status == 200 else set()

    found = wait_until("search results for 'example'", titles, SEARCH_TIMEOUT, 5,
                       until=lambda seen: "example-website" in seen)
    assert "example-website" in found


def test_the_catalog_keeps_answering_while_the_scaffolder_is_gone(
    kubectl: Kubectl, ingress: Ingress, guest_token: str, probe_factory
) -> None:
    scaffolder = f"{INSTANCE}-backend-scaffolder"
    probe = probe_factory().start()
    try:
        kubectl("scale", "deployment", scaffolder, "--replicas=0")
        # Gone, not only terminating: a Service whose endpoints are all terminating still sends
        # requests to them while they serve out their preStop delay.
        wait_until("the scaffolder's pods to go",
                   lambda: kubectl.get("pods", "-l", f"{BACKEND},backstage.k8s/backend=scaffolder")["items"],
                   180, 1, until=lambda pods: not pods)
        gone = ingress("/api/scaffolder/v2/actions", token=guest_token)
        assert gone.status >= 500, gone
        time.sleep(5)
        kubectl("scale", "deployment", scaffolder, "--replicas=1")
        wait_until("the scaffolder to answer again", lambda: ingress("/api/scaffolder/v2/actions", token=guest_token),
                   300, 2, until=lambda response: response.status == 200)
    finally:
        kubectl("scale", "deployment", scaffolder, "--replicas=1")
        summary = probe.stop()
    assert summary["requests"] > 50 and summary["failed"] == 0, summary


def test_the_portal_shows_the_catalog_and_the_scaffolder_in_chromium(public_url: str, artifacts: Path) -> None:
    browser_dir = subprocess.run(
        [str(SCENARIO_DIR.parent / "cluster" / "browser" / "install.sh")], check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    for page, shown, screenshot in (("/catalog", "example-website", artifacts / "catalog.png"),
                                    ("/create", "Example service", artifacts / "scaffolder.png")):
        screenshot.unlink(missing_ok=True)
        result = subprocess.run(
            ["node", "portal.mjs", public_url, shown, str(screenshot)], cwd=browser_dir, capture_output=True,
            text=True, timeout=180, check=False, env={**os.environ, "PORTAL_PATH": page},
        )
        report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
        assert screenshot.is_file() and screenshot.stat().st_size > 10_000, (page, report, result.stderr[-2000:])
        assert result.returncode == 0 and report.get("ok"), (page, report, result.stderr[-2000:])
        assert report["url"].startswith(public_url + page)


# --------------------------------------------------------------------------- rotation


def test_a_forced_rotation_rolls_every_backend_without_a_failed_request(
    kubectl: Kubectl, namespace: str, scenario: dict[str, Any], probe_factory, artifacts: Path
) -> None:
    def pods() -> dict[str, set[str]]:
        selectors = {deployment_name(backend): f"{BACKEND},backstage.k8s/backend={backend['name']}"
                     for backend in scenario["backstage_k8s_backends"]}
        return {name: {pod["metadata"]["name"] for pod in kubectl.pods(selector)} for name, selector in selectors.items()}

    def serials() -> dict[str, int]:
        return {deployment_name(backend): kubectl.certificate(client_secret(backend)).serial_number
                for backend in scenario["backstage_k8s_backends"]}

    before, serials_before = pods(), serials()
    probe = probe_factory().start()
    try:
        # The CronJob's own rotation, started as a Job by playbooks/rotate.yml.
        run_rotate(cluster_env()["KUBECONFIG"], namespace, "-e", "cert_rotation_force=true",
                   log=artifacts / "rotate.log", collections_path=venv_collections_path())
    finally:
        summary = probe.stop()
    (artifacts / "rotation-availability.json").write_text(json.dumps(summary, indent=2))
    after, deployments, serials_after = pods(), backend_deployments(kubectl), serials()
    for name, old in before.items():
        assert serials_after[name] != serials_before[name], name
        assert after[name] and not after[name] & old, (name, old, after[name])
        assert deployments[name]["metadata"]["annotations"][SERIAL_RECORD] == str(serials_after[name])
        assert rolled_out(deployments[name])
    assert summary["requests"] > 50 and summary["failed"] == 0, summary


# --------------------------------------------------------------------------- one backend and back


def test_a_move_to_one_backend_and_back_keeps_the_catalog_and_the_task_history(
    kubectl: Kubectl, ingress: Ingress, guest_token: str, scenario: dict[str, Any], scaffolder_task: dict[str, str],
    tmp_path: Path,
) -> None:
    assert scaffolder_task, "the scaffolder test ran no task"
    entities = catalog_names(ingress, guest_token)
    split = {deployment_name(backend) for backend in scenario["backstage_k8s_backends"]}

    converge(tmp_path, "-e", json.dumps({"backstage_k8s_backends": []}))
    assert set(backend_deployments(kubectl)) == {SINGLE}
    assert rolled_out(backend_deployments(kubectl)[SINGLE])
    left = {item["metadata"]["name"] for kind in ("service", "poddisruptionbudget", "networkpolicy")
            for item in kubectl.get(kind)["items"]} & split
    assert not left, left
    token = wait_until("guest sign-in on one backend", lambda: ingress("/api/auth/guest/refresh"), 120, 2,
                       until=lambda response: response.status == 200).json()["backstageIdentity"]["token"]
    assert catalog_names(ingress, token) >= entities
    assert task_of(ingress, token, scaffolder_task["id"])["status"] == "completed"

    converge(tmp_path)
    assert set(backend_deployments(kubectl)) == split
    left = {item["metadata"]["name"] for kind in ("service", "poddisruptionbudget")
            for item in kubectl.get(kind)["items"]}
    assert SINGLE not in left, left
    token = wait_until("guest sign-in on the split backends", lambda: ingress("/api/auth/guest/refresh"), 120, 2,
                       until=lambda response: response.status == 200).json()["backstageIdentity"]["token"]
    assert catalog_names(ingress, token) >= entities
    assert task_of(ingress, token, scaffolder_task["id"])["status"] == "completed"
    assert converge(tmp_path)["changed"] == 0
