"""What a user of site.yml gets on a real cluster: Backstage reachable through the Ingress,
its backend on PostgreSQL over verified TLS with a client certificate, the portal in a browser."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import SCENARIO_DIR, HttpGet
from testcluster import ANSIBLE_PLAYBOOK, REPO, Kubectl, ansible_env, ansible_playbook, play_recap, wait_until

EXAMPLE_ENTITIES = [
    ("Component", "example-website"),
    ("System", "examples"),
    ("API", "example-grpc-api"),
    ("Group", "guests"),
    ("User", "guest"),
]
BACKEND = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend"
FRONTEND = "app.kubernetes.io/name=backstage,app.kubernetes.io/component=frontend"
POSTGRES = "app.kubernetes.io/name=postgres"
# converge.yml as Molecule runs it: with the scenario's inventory (its settings are group_vars).
CONVERGE = (str(SCENARIO_DIR / "converge.yml"), "-i", str(SCENARIO_DIR / "inventory"))


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------- pods


def test_every_pod_is_ready(k8s_json) -> None:
    pods = [p for p in k8s_json("pods")["items"] if p["status"].get("phase") != "Succeeded"]
    assert pods, "no pods in the namespace"
    not_ready = [p["metadata"]["name"] for p in pods if not ready(p)]
    assert not_ready == []


@pytest.mark.parametrize(
    ("selector", "count"),
    [(BACKEND, 2), (FRONTEND, 2), (POSTGRES, 1)],
    ids=["backend", "frontend", "postgres"],
)
def test_each_component_runs_its_replicas(k8s_json, selector: str, count: int) -> None:
    pods = k8s_json("pods", "-l", selector)["items"]
    assert len([p for p in pods if ready(p)]) == count


def test_backend_rolls_out_without_losing_a_ready_pod(k8s_json) -> None:
    deployment = k8s_json("deployment", "-l", BACKEND)["items"][0]
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/.backstage/health/v1/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/.backstage/health/v1/liveness"


def test_pdb_lets_exactly_one_backend_pod_be_evicted(k8s_json) -> None:
    pdb = k8s_json("pdb", "-l", BACKEND)["items"][0]
    assert pdb["status"]["expectedPods"] == 2
    assert pdb["status"]["disruptionsAllowed"] == 1


@pytest.mark.parametrize("selector", [BACKEND, FRONTEND], ids=["backend", "frontend"])
def test_pods_meet_the_restricted_pod_security_standard(k8s_json, selector: str) -> None:
    for pod in k8s_json("pods", "-l", selector)["items"]:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"] and container["resources"]["requests"]
            assert container["readinessProbe"] and container["livenessProbe"]


def test_network_policy_admits_only_backend_pods_to_postgres(k8s_json, scenario) -> None:
    policies = k8s_json("networkpolicy")["items"]
    pods = k8s_json("pods")["items"]
    postgres = [p for p in pods if selected({"app.kubernetes.io/name": "postgres"}, p["metadata"]["labels"])]
    assert postgres
    guarding = [
        np for np in policies
        if all(selected(np["spec"]["podSelector"].get("matchLabels", {}), p["metadata"]["labels"]) for p in postgres)
    ]
    ours = [np for np in guarding if np["metadata"]["labels"].get("app.kubernetes.io/name") == "backstage"]
    assert len(ours) == 1, "the backstage role's NetworkPolicy should select the PostgreSQL pods"
    (rule,) = ours[0]["spec"]["ingress"]
    assert ours[0]["spec"]["policyTypes"] == ["Ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]

    def admitted(labels: dict[str, str], policies: list[dict[str, Any]]) -> bool:
        return any(
            selected(peer["podSelector"]["matchLabels"], labels)
            for np in policies for rule in np["spec"]["ingress"] for peer in rule["from"]
        )

    test_client = scenario["scenario_database_test_client_label"]
    for pod in pods:
        labels = pod["metadata"]["labels"]
        component = labels.get("app.kubernetes.io/component")
        # The scenario's psql pods are let in on purpose (backstage_database_network_policy_extra_peers).
        expected = component == "backend" or labels.get(test_client) == "true"
        assert admitted(labels, ours) == expected, pod["metadata"]["name"]
        if labels.get("app.kubernetes.io/name") in ("backstage", "postgres") and component != "backend":
            # Not by any other policy either (policies add up).
            assert not admitted(labels, guarding), pod["metadata"]["name"]
    assert any(p["metadata"]["labels"].get("app.kubernetes.io/component") == "backend" for p in pods)


def test_objects_carry_the_inventory_instance_and_names(k8s_json, scenario) -> None:
    # backstage_k8s_instance in group_vars: every role's objects carry it, the backend is named by it.
    instance = scenario["backstage_k8s_instance"]
    for kind in ("deployment", "statefulset", "service", "networkpolicy", "cronjob", "secret", "configmap"):
        ours = [o for o in k8s_json(kind)["items"]
                if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "backstage.k8s"]
        assert ours, f"no {kind} of the collection in the namespace"
        wrong = {o["metadata"]["name"]: o["metadata"]["labels"].get("app.kubernetes.io/instance") for o in ours
                 if o["metadata"]["labels"].get("app.kubernetes.io/instance") != instance}
        assert not wrong, f"{kind}s not of instance {instance}: {wrong}"
    assert k8s_json("deployment", f"{instance}-backend")["metadata"]["name"] == f"{instance}-backend"


def test_postgres_admits_the_inventory_database_user_and_the_certificate_names_it(k8s_json, scenario) -> None:
    # backstage_k8s_database_user in group_vars: pg_hba.conf, initdb's superuser and the client
    # certificate's CN all follow it.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    user = scenario["backstage_k8s_database_user"]
    assert user != "postgres"
    hba = next(c["data"]["pg_hba.conf"] for c in k8s_json("configmap")["items"] if "pg_hba.conf" in c.get("data", {}))
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert ["hostssl", "all", f'"{user}"', "all", "cert"] in rules, hba
    env = k8s_json("statefulset", "-l", POSTGRES)["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "POSTGRES_USER", "value": user} in env
    certificate = x509.load_pem_x509_certificate(
        base64.b64decode(k8s_json("secret", "backstage-postgres-client-tls")["data"]["tls.crt"]))
    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [user]
    app_config = next(c["data"] for c in k8s_json("configmap")["items"]
                      if c["metadata"]["name"] == f"{scenario['backstage_k8s_instance']}-app-config")
    assert f"user: {user}" in "\n".join(app_config.values())


def test_network_policy_selects_the_postgres_pods_by_their_instance(k8s_json, scenario) -> None:
    postgres = k8s_json("pods", "-l", POSTGRES)["items"]
    assert postgres and all(p["metadata"]["labels"]["app.kubernetes.io/instance"] == scenario["backstage_k8s_instance"]
                            for p in postgres)
    policy = k8s_json("networkpolicy", f"{scenario['backstage_k8s_instance']}-postgres-clients")
    assert all(selected(policy["spec"]["podSelector"]["matchLabels"], p["metadata"]["labels"]) for p in postgres)


# --------------------------------------------------------------------------- through the Ingress


def test_catalog_refuses_an_anonymous_request(ingress_get: HttpGet) -> None:
    assert ingress_get("/api/catalog/entities").status == 401


def test_catalog_through_the_ingress_lists_the_example_entities(
    ingress_get: HttpGet, guest_token: str
) -> None:
    # The backend answers from its catalog database: this is the TLS client-certificate path.
    def entities() -> set[tuple[str, str]]:
        response = ingress_get("/api/catalog/entities", token=guest_token)
        assert response.status == 200, response.body[:300]
        return {(e["kind"], e["metadata"]["name"]) for e in response.json()}

    found = wait_until("the example entities in the catalog", entities, timeout=120, interval=3,
                       until=lambda found: set(EXAMPLE_ENTITIES) <= found)
    assert set(EXAMPLE_ENTITIES) <= found


def test_backend_health_is_reachable_under_dot_backstage(ingress_get: HttpGet) -> None:
    response = ingress_get("/.backstage/health/v1/readiness")
    assert response.status == 200
    assert response.json()["status"] == "ok"


def test_ingress_serves_nothing_for_another_host(ingress_get: HttpGet) -> None:
    assert ingress_get("/api/catalog/entities", host_header="not-backstage.localhost").status == 404


def test_index_html_is_never_cached_and_carries_the_public_url(
    ingress_get: HttpGet, public_url: str
) -> None:
    response = ingress_get("/")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-cache"
    html = response.body.decode()
    match = re.search(
        r'<script type="backstage.io/config" id="backstage-runtime-config">\s*(.*?)\s*</script>', html, re.S
    )
    assert match, "no runtime config in index.html"
    (entry,) = json.loads(match.group(1))
    assert entry["data"]["app"]["baseUrl"] == public_url
    assert entry["data"]["backend"]["baseUrl"] == public_url


def test_client_side_routes_get_index_html(ingress_get: HttpGet) -> None:
    response = ingress_get("/catalog/default/component/example-website")
    assert response.status == 200
    assert b"backstage-runtime-config" in response.body


def test_hashed_assets_are_cached_immutably(ingress_get: HttpGet) -> None:
    html = ingress_get("/").body.decode()
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', html)
    assert scripts, "index.html references no /static/*.js"
    response = ingress_get(scripts[0])
    assert response.status == 200
    assert "immutable" in response.headers["Cache-Control"]
    assert "max-age=31536000" in response.headers["Cache-Control"]


# --------------------------------------------------------------------------- PostgreSQL


def psql(kubectl: Kubectl, k8s_json, namespace: str, scenario: dict[str, Any], sql: str,
         dbname: str = "postgres") -> str:
    """Run psql in a throwaway pod with the backend's client certificate (verify-full)."""
    statefulset = k8s_json("statefulset", "-l", POSTGRES)["items"][0]
    image = statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    deployment = k8s_json("deployment", "-l", BACKEND)["items"][0]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    secret = next(v["secret"]["secretName"] for v in volumes if "secret" in v)
    host = f"postgres.{namespace}.svc.cluster.local"
    name = f"psql-{uuid.uuid4().hex[:8]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {scenario["scenario_database_test_client_label"]: "true"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "psql",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["psql", "-v", "ON_ERROR_STOP=1", "-Atc", sql,
                            f"host={host} port=5432 user={scenario['backstage_k8s_database_user']} dbname={dbname} sslmode=verify-full "
                            "sslrootcert=/tls/ca.crt sslcert=/tls/tls.crt sslkey=/tls/tls.key"],
                "env": [{"name": "HOME", "value": "/tmp"}],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}],
            }],
            "volumes": [{"name": "tls", "secret": {"secretName": secret, "defaultMode": 0o440}}],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        phase = wait_until(f"psql pod {name} to finish",
                           lambda: kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}"),
                           timeout=120, interval=2, until=lambda phase: phase in ("Succeeded", "Failed"),
                           diagnostics=lambda: kubectl("-n", namespace, "logs", name, check=False))
        logs = kubectl("-n", namespace, "logs", name, check=False)
        assert phase == "Succeeded", f"psql pod {phase}: {logs}"
        return logs
    finally:
        kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)


def test_backstage_created_its_per_plugin_databases(kubectl, k8s_json, namespace, scenario) -> None:
    databases = psql(kubectl, k8s_json, namespace, scenario,
                     "SELECT datname FROM pg_database ORDER BY 1").split()
    assert "backstage_plugin_catalog" in databases
    assert "backstage_plugin_auth" in databases


def test_catalog_database_holds_the_example_entities(kubectl, k8s_json, namespace, scenario) -> None:
    # Read the catalog's own table over a second connection: the rows the API served come from here.
    out = psql(kubectl, k8s_json, namespace, scenario,
               "SELECT entity_ref FROM refresh_state ORDER BY 1", dbname="backstage_plugin_catalog")
    assert "component:default/example-website" in out.split()


# --------------------------------------------------------------------------- the browser


def test_portal_catalog_page_lists_an_entity_in_chromium(public_url: str, artifacts: Path) -> None:
    browser_dir = subprocess.run(
        [str(SCENARIO_DIR / "browser" / "install.sh")], check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    screenshot = artifacts / "catalog.png"
    screenshot.unlink(missing_ok=True)
    result = subprocess.run(
        ["node", "portal.mjs", public_url, "example-website", str(screenshot)],
        cwd=browser_dir, capture_output=True, text=True, timeout=180, check=False,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, (report, result.stderr[-2000:])
    assert result.returncode == 0 and report.get("ok"), (report, result.stderr[-2000:])
    assert report["url"].startswith(public_url + "/catalog")


def converge_env(collections_path: Path) -> dict[str, str]:
    """The scenario's converge.yml run from here: this checkout's ansible.cfg, no other collections
    path than ``collections_path``, and the project directory Molecule would give it."""
    return {"MOLECULE_PROJECT_DIRECTORY": str(REPO), **ansible_env(str(collections_path))}


# --------------------------------------------------------------------------- re-runs


def test_a_rerun_with_nothing_to_change_runs_no_module(tmp_path: Path) -> None:
    # backstage.k8s.k8s_get and k8s_apply decide in the controller's process; a module run (an
    # AnsiballZ payload, logged at -vvv) would mean a read or an apply that was not recognised as such.
    result = ansible_playbook(*CONVERGE, "-vvv", env=converge_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert play_recap(result.stdout)["changed"] == 0, result.stdout[-3000:]
    module_runs = [line for line in result.stdout.splitlines() if "AnsiballZ_" in line]
    assert not module_runs, module_runs[:5]


def test_a_change_made_by_hand_is_undone_by_the_next_run(k8s_json, kubectl, namespace: str, tmp_path: Path) -> None:
    frontend = k8s_json("deployment", "-l", FRONTEND)["items"][0]
    replicas = frontend["spec"]["replicas"]
    kubectl.in_namespace(namespace)("scale", "deployment", frontend["metadata"]["name"], "--replicas", str(replicas + 1))
    result = ansible_playbook(*CONVERGE, "--tags", "backstage",
                              env=converge_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert play_recap(result.stdout)["changed"] == 1, result.stdout[-3000:]
    # kubernetes.core.k8s ran, put the replicas back and waited for the rollout.
    after = k8s_json("deployment", "-l", FRONTEND)["items"][0]
    assert after["spec"]["replicas"] == replicas
    assert after["status"].get("readyReplicas") == replicas == after["status"].get("replicas")


def key_material_outside_data(secret: dict[str, Any]) -> list[str]:
    """The places besides ``data`` where a Secret holds one of its own values (base64 or decoded lines)."""
    outside = json.dumps({k: v for k, v in secret.items() if k != "data"})
    found = []
    for key, value in (secret.get("data") or {}).items():
        decoded = base64.b64decode(value).decode(errors="replace")
        needles = [value] + [line for line in decoded.splitlines() if len(line) >= 40 and "-----" not in line]
        found += [key for needle in needles if needle in outside][:1]
    return found


def test_no_secret_holds_its_data_outside_data(k8s_json) -> None:
    secrets = k8s_json("secrets")["items"]
    assert {s["metadata"]["name"] for s in secrets} >= {"backstage-pki-ca", "postgres-server-tls",
                                                        "backstage-postgres-client-tls"}
    leaks = {s["metadata"]["name"]: key_material_outside_data(s) for s in secrets}
    assert not any(leaks.values()), leaks


def test_a_secret_written_by_a_client_side_apply_loses_its_annotation(
    k8s_json, kubectl, namespace: str, tmp_path: Path
) -> None:
    # What earlier versions did: kubectl apply (client-side) copies the key into an annotation.
    secret = k8s_json("secret", "backstage-postgres-client-tls")
    kubectl.in_namespace(namespace).apply({k: secret[k] for k in ("apiVersion", "kind", "type", "data")}
                                          | {"metadata": {"name": secret["metadata"]["name"],
                                                          "labels": secret["metadata"]["labels"]}})
    assert "tls.key" in key_material_outside_data(k8s_json("secret", "backstage-postgres-client-tls"))
    result = ansible_playbook(*CONVERGE, "--tags", "pki",
                              env=converge_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    after = k8s_json("secret", "backstage-postgres-client-tls")
    assert "kubectl.kubernetes.io/last-applied-configuration" not in after["metadata"].get("annotations", {})
    assert not key_material_outside_data(after)
    assert after["data"] == secret["data"]


def test_a_false_flag_given_as_text_on_the_command_line_is_false(k8s_json, tmp_path: Path) -> None:
    # `-e pki_ca_replace=false` arrives as the string "false", which Jinja takes for true.
    before = k8s_json("secret", "backstage-pki-ca")
    result = ansible_playbook(*CONVERGE, "--tags", "pki", "-e", "pki_ca_replace=false",
                              env=converge_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert play_recap(result.stdout)["changed"] == 0, result.stdout[-3000:]
    after = k8s_json("secret", "backstage-pki-ca")
    assert (after["metadata"]["uid"], after["data"]) == (before["metadata"]["uid"], before["data"])


def test_the_admission_policy_goes_when_turned_off_and_comes_back(
        kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    name = f"backstage-cert-rotation-{namespace}"
    kinds = ("validatingadmissionpolicy", "validatingadmissionpolicybinding")

    def deployed() -> list[str]:
        return [kind for kind in kinds
                if kubectl.run("get", kind, name, "--ignore-not-found", "-o", "name", check=False).stdout.strip()]

    def converge(*extra: str) -> dict[str, int]:
        result = ansible_playbook(*CONVERGE, "--tags", "cert_rotation", *extra, env=converge_env(tmp_path), timeout=600)
        assert result.returncode == 0, result.stdout[-3000:]
        return play_recap(result.stdout)

    assert deployed() == list(kinds)
    try:
        assert converge("-e", "cert_rotation_admission_policy=false")["changed"] == 1
        assert deployed() == []
        assert converge("-e", "cert_rotation_admission_policy=false")["changed"] == 0
    finally:
        converge()
    assert deployed() == list(kinds)


# --------------------------------------------------------------------------- refusals


def test_a_client_certificate_for_another_user_is_refused_before_deploying(k8s_json, tmp_path: Path) -> None:
    before = k8s_json("deployment", "-l", BACKEND)["items"][0]["metadata"]["generation"]
    # Every role follows the shared setting, so the preflight lets it through; pki does not run
    # (--tags), and the backstage role finds the certificate's CN is another user.
    result = ansible_playbook(*CONVERGE, "--tags", "backstage",
                              "-e", "backstage_k8s_database_user=someone_else", env=converge_env(tmp_path), timeout=600)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "Check that each client certificate's CN is its backend's database user" in result.stdout
    assert "does not match the database user" in result.stdout, result.stdout[-3000:]
    after = k8s_json("deployment", "-l", BACKEND)["items"][0]["metadata"]["generation"]
    assert after == before


# --------------------------------------------------------------------------- rotation (changes state: last)


def test_a_rotated_client_certificate_rolls_the_backend_and_it_keeps_serving(
    k8s_json, ingress_get: HttpGet, guest_token: str, tmp_path: Path, artifacts: Path
) -> None:
    def backend_pods() -> dict[str, str]:
        # Pods on their way out (serving out their preStop delay) are not the backend any more.
        return {p["metadata"]["name"]: p["metadata"]["creationTimestamp"]
                for p in k8s_json("pods", "-l", BACKEND)["items"]
                if not p["metadata"].get("deletionTimestamp")}

    secret_before = k8s_json("secret", "backstage-postgres-client-tls")["data"]["tls.crt"]
    pods_before = backend_pods()
    # At -vvv: every file written for a module run is logged ("PUT ..."), and so is anything a task
    # would let out.
    playbook = subprocess.Popen(
        [ANSIBLE_PLAYBOOK, *CONVERGE, "--tags", "pki,backstage", "-e", "pki_force_rotation=true",
         "-vvv"],
        cwd=REPO, env=converge_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # Read all along, in memory: -vvv output would fill the pipe and stop the playbook.
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(playbook.stdout or []), daemon=True)
    reader.start()
    # Ask the catalog through the Ingress all along the rolling restart.
    statuses: list[int] = []
    while playbook.poll() is None:
        statuses.append(ingress_get("/api/catalog/entities?limit=1", token=guest_token).status)
        time.sleep(0.5)
    reader.join(timeout=60)
    output = "".join(chunks)
    assert playbook.returncode == 0, output[-3000:]

    assert k8s_json("secret", "backstage-postgres-client-tls")["data"]["tls.crt"] != secret_before
    # No module's arguments (the CA key, the new keys) went to a file: they are piped to the modules.
    module_files = [line for line in output.splitlines() if line.lstrip().startswith("PUT ") and "AnsiballZ_" in line]
    assert not module_files, module_files[:3]
    keys = {name: k8s_json("secret", name)["data"]["tls.key"]
            for name in ("backstage-pki-ca", "postgres-server-tls", "backstage-postgres-client-tls")}
    shown = [name for name, key in keys.items()
             if key in output or base64.b64decode(key).decode().splitlines()[1] in output]
    assert not shown, f"private keys in the -vvv output: {shown}"
    (artifacts / "rotation.log").write_text(output)
    pods_after = backend_pods()
    assert not set(pods_after) & set(pods_before), "every backend pod should have been replaced"
    template = k8s_json("deployment", "-l", BACKEND)["items"][0]["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    # The new pods reach PostgreSQL with the new certificate.
    response = ingress_get("/api/catalog/entities?filter=metadata.name=example-website", token=guest_token)
    assert response.status == 200 and response.json()[0]["metadata"]["name"] == "example-website"
    failures = [s for s in statuses if s != 200]
    (artifacts / "rotation-availability.json").write_text(
        json.dumps({"requests": len(statuses), "failures": len(failures), "statuses": sorted(set(statuses))}))
    assert statuses and not failures, f"{len(failures)} of {len(statuses)} requests failed: {sorted(set(failures))}"
