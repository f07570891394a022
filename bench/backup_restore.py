"""Backup and restore times and sizes for a catalog of a few thousand entities.

Deploys Backstage on the test cluster (tests/faults/deploy.yml: site.yml with the test images) in
its own namespace, serves a catalog-info.yaml of N Components from a pod in that namespace (the
execution environment image's Python, `http.server`), registers it through the catalog API
(POST /api/catalog/locations), waits until the catalog holds every entity, then times
`backup.yml` (a Job from the backup CronJob) and `restore.yml` (verify, stop the backend, restore,
start it) and reads each Job's own numbers from its log. Prints one JSON document.

    TESTCLUSTER_INSTANCE=3 .venv/bin/python bench/backup_restore.py --entities 3000
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lib"))

from testcluster import (  # noqa: E402
    REPO, Cluster, Kubectl, ansible_env, ansible_playbook, guest_token, http_request, venv_collections_path, wait_until,
)

SERVER = "catalog-bench"


def catalog_yaml(count: int) -> str:
    docs = []
    for n in range(count):
        docs.append(f"""apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bench-{n:05d}
  description: Component {n} of the backup benchmark, with a description long enough to look real.
  tags: [bench, backup]
  annotations:
    backstage.io/techdocs-ref: dir:.
spec:
  type: service
  lifecycle: production
  owner: guests
  system: examples
""")
    return "---\n".join(docs)


def run(name: str, args: list[str], cluster: Cluster) -> tuple[float, str]:
    started = time.monotonic()
    result = ansible_playbook(*args, env=ansible_env(venv_collections_path(), base=cluster.process_env), timeout=3600)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    (REPO / "artifacts" / "bench").mkdir(parents=True, exist_ok=True)
    (REPO / "artifacts" / "bench" / f"backup-restore-{name}.log").write_text(output)
    assert result.returncode == 0, f"{name} failed:\n{output[-4000:]}"
    return seconds, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=3000)
    parser.add_argument("--namespace", default="backstage-bench-backup")
    parser.add_argument("--reuse", action="store_true", help="keep a deployment the script made before")
    args = parser.parse_args()
    cluster = Cluster()
    ns, host = args.namespace, f"{args.namespace}.localhost"
    kubectl = Kubectl(ns, cluster.env)
    server_host = f"{SERVER}.{ns}.svc.cluster.local:8080"
    variables = {"faults_namespace": ns, "faults_ingress_host": host, "backstage_replicas": 1,
                 "backstage_frontend_replicas": 1,
                 "backstage_extra_app_config": {"backend": {"reading": {"allow": [{"host": server_host}]}}}}
    deploy_s = 0.0
    if not args.reuse:
        kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", namespaced=False, timeout=600)
        deploy_s = run("deploy", [str(REPO / "tests" / "faults" / "deploy.yml"), "-e", json.dumps(variables)], cluster)[0]

    image = kubectl.get("cronjob", "backstage-cert-rotation")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    # Created, not applied: the catalog is too big for kubectl apply's last-applied annotation.
    kubectl("delete", "configmap,pod,service", SERVER, "--ignore-not-found", "--wait=true")
    kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SERVER},
                                                   "data": {"catalog-info.yaml": catalog_yaml(args.entities)}}))
    kubectl.apply([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": SERVER, "labels": {"app": SERVER}},
         "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [{"name": "http", "image": image, "imagePullPolicy": "IfNotPresent",
                                  "command": ["python3", "-m", "http.server", "8080", "-d", "/www"],
                                  "ports": [{"containerPort": 8080}], "securityContext": restricted,
                                  "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                                  "volumeMounts": [{"name": "www", "mountPath": "/www"}]}],
                  "volumes": [{"name": "www", "configMap": {"name": SERVER}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVER},
         "spec": {"selector": {"app": SERVER}, "ports": [{"port": 8080, "targetPort": 8080}]}},
    ])
    kubectl("wait", "--for=condition=Ready", f"pod/{SERVER}", "--timeout=180s", timeout=200)

    url = cluster.env["TESTCLUSTER_INGRESS_URL"].rstrip("/")
    token = guest_token(url, host, wait=300)
    started = time.monotonic()
    response = http_request(url + "/api/catalog/locations", "POST", host, token,
                            {"type": "url", "target": f"http://{server_host}/catalog-info.yaml"}, timeout=60)
    assert response.status == 201, response

    def components() -> int:
        got = http_request(url + "/api/catalog/entities/by-query?limit=1&filter=kind=component,metadata.tags=bench",
                           host=host, token=token, timeout=60)
        return got.json().get("totalItems", 0) if got.status == 200 else -1

    wait_until(f"{args.entities} bench components in the catalog", components, 1800, 5,
               until=lambda n: n >= args.entities)
    ingest_s = time.monotonic() - started
    entities = http_request(url + "/api/catalog/entities/by-query?limit=1", host=host, token=token, timeout=60).json()["totalItems"]

    base = ["-e", json.dumps({"backstage_k8s_kubeconfig": cluster.env["KUBECONFIG"], "backstage_k8s_namespace": ns})]
    backup_s, backup_out = run("backup", ["backstage.k8s.backup", *base], cluster)
    restore_s, restore_out = run("restore", ["backstage.k8s.restore", *base], cluster)

    def number(pattern: str, text: str) -> float:
        match = re.search(pattern, text)
        return float(match[1]) if match else -1

    catalog_bytes = number(r"dumped backstage_plugin_catalog \((\d+) bytes\)", backup_out)
    print(json.dumps({
        "entities": entities, "bench_components": args.entities,
        "deploy_s": round(deploy_s), "ingest_s": round(ingest_s),
        "backup_playbook_s": round(backup_s, 1), "backup_job_dump_s": number(r"bytes, in (\d+) s", backup_out),
        "backup_bytes": number(r"BACKUP_BYTES=(\d+)", backup_out), "catalog_dump_bytes": catalog_bytes,
        "restore_playbook_s": round(restore_s, 1), "restore_job_s": number(r"restored \S+ in (\d+) s", restore_out),
        "database_catalog_bytes": int(kubectl_query_size(kubectl)),
    }, indent=2))
    kubectl("delete", "namespace", ns, "--wait=false", namespaced=False)


def kubectl_query_size(kubectl: Kubectl) -> float:
    from testcluster import postgres_query
    return postgres_query(kubectl, "SELECT pg_database_size('backstage_plugin_catalog')")["rows"][0][0]


if __name__ == "__main__":
    main()
