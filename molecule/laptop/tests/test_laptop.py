# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""What a laptop user has after `make deploy` on microk8s 1.35: Traefik installed by microk8s's
own ingress addon (its Helm chart, the Gateway API CRDs), the images imported from the docker
command line, and Backstage's catalog page in Chromium through the Ingress Traefik serves.
microk8s is the one the scenario's create laid out (microk8s's own code over the test cluster)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
sys.path.insert(0, str(REPO / 'tests' / 'lib'))

# pylint: disable-next=wrong-import-position
from testcluster import artifacts_dir, cluster_env, http_request  # noqa: E402  (tests/lib)

EPHEMERAL = Path(os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '/nonexistent'))
MICROK8S = EPHEMERAL / 'microk8s' / 'bin' / 'microk8s'
DOCKER = EPHEMERAL / 'docker-cli' / 'docker'
CHART = REPO / 'tests' / 'microk8s-snap' / 'vendor' / '1.35' / 'traefik-helm-chart' / 'traefik' / 'Chart.yaml'
NAMESPACE = 'backstage-laptop'
HOST = 'backstage-laptop.localhost'


def microk8s(*args: str) -> str:
    return subprocess.run([str(MICROK8S), *args], capture_output=True, text=True, check=True, timeout=300).stdout


def kubectl_json(*args: str) -> Dict[str, Any]:
    return json.loads(microk8s('kubectl', '--kubeconfig', str(EPHEMERAL / 'kubeconfig'), *args, '-o', 'json'))


def ready(item: Dict[str, Any]) -> bool:
    return any(c['type'] == 'Ready' and c['status'] == 'True' for c in item['status'].get('conditions', []))


def chart_field(name: str) -> str:
    return next(line.split(':', 1)[1].strip() for line in CHART.read_text().splitlines() if line.startswith(name + ':'))


def ingress_url() -> str:
    return cluster_env()['TESTCLUSTER_INGRESS_URL']


def test_traefik_runs_as_the_ingress_addon_installed_it_with_helm() -> None:
    pods: List[Dict[str, Any]] = kubectl_json('get', 'pods', '-n', 'ingress', '-l', 'app.kubernetes.io/name=traefik')['items']
    assert pods and all(ready(pod) for pod in pods)
    # The image the chart names (its appVersion), which is the test cluster's Traefik build.
    assert {c['image'] for pod in pods for c in pod['spec']['containers']} == {'docker.io/traefik:' + chart_field('appVersion')}
    releases = kubectl_json('get', 'secrets', '-n', 'ingress', '-l', 'owner=helm,name=traefik')['items']
    assert [r['metadata']['labels']['status'] for r in releases] == ['deployed']
    release = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(releases[0]['data']['release']))))
    assert release['chart']['metadata']['version'] == chart_field('version')
    # The values microk8s's addon passes: a DaemonSet on the node's ports 80 and 443.
    assert release['config']['deployment']['kind'] == 'DaemonSet'


def test_gateway_api_crds_are_the_release_the_addon_names() -> None:
    crd = kubectl_json('get', 'crd', 'httproutes.gateway.networking.k8s.io')
    annotations = crd['metadata']['annotations']
    assert annotations['gateway.networking.k8s.io/bundle-version'] == 'v1.4.0'
    assert annotations['gateway.networking.k8s.io/channel'] == 'standard'


def test_the_backstage_ingress_is_public_and_public_is_traefik() -> None:
    ingresses = kubectl_json('get', 'ingress', '-n', NAMESPACE)['items']
    assert [i['spec']['ingressClassName'] for i in ingresses] == ['public']
    assert kubectl_json('get', 'ingressclass', 'public')['spec']['controller'] == 'traefik.io/ingress-controller'


def test_traefik_routes_the_backstage_host_and_nothing_else() -> None:
    index = http_request(ingress_url() + '/', host=HOST)
    assert index.status == 200 and b'<html' in index.body.lower()
    health = http_request(ingress_url() + '/.backstage/health/v1/readiness', host=HOST)
    assert health.status == 200
    assert http_request(ingress_url() + '/', host='another.localhost').status == 404


def config_digest_in_microk8s(name: str) -> str:
    listed = {f[0]: f[2] for f in (line.split() for line in microk8s('ctr', 'images', 'ls').splitlines()[1:]) if len(f) >= 3}
    manifest = json.loads(microk8s('ctr', 'content', 'get', listed[name]))
    return manifest['config']['digest']


def scenario_images() -> List[str]:
    out = subprocess.run([str(DOCKER), 'images', '--format', '{{.Repository}}:{{.Tag}}', '--filter',
                          'reference=localhost/backstage-k8s-laptop{0}/*'.format(os.environ.get('MICROK8S_SNAP_INSTANCE', ''))],
                         capture_output=True, text=True, check=True).stdout.split()
    return sorted(out)


def test_every_image_came_from_the_docker_command_line() -> None:
    images = scenario_images()
    assert len(images) == 4
    for name in images:
        docker_id = subprocess.run([str(DOCKER), 'image', 'inspect', '--format', '{{.Id}}', name],
                                   capture_output=True, text=True, check=True).stdout.strip()
        assert config_digest_in_microk8s(name) == 'sha256:' + docker_id.removeprefix('sha256:'), name
    running = {c['image'] for pod in kubectl_json('get', 'pods', '-n', NAMESPACE)['items'] for c in pod['spec']['containers']}
    # The ee image runs only when the rotation and backup CronJobs fire.
    assert {n for n in images if n.rsplit('/', 1)[1].startswith(('postgres:', 'backstage-'))} <= running


def test_portal_catalog_page_lists_an_entity_in_chromium() -> None:
    browser_dir = subprocess.run([str(REPO / 'molecule' / 'cluster' / 'browser' / 'install.sh')], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    public_url = 'http://{0}:{1}'.format(HOST, ingress_url().rsplit(':', 1)[1])
    screenshot = artifacts_dir('laptop') / 'catalog.png'
    screenshot.unlink(missing_ok=True)
    result = subprocess.run(['node', 'portal.mjs', public_url, 'example-website', str(screenshot)],
                            cwd=browser_dir, capture_output=True, text=True, timeout=180, check=False)
    report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, (report, result.stderr[-2000:])
    assert result.returncode == 0 and report.get('ok'), (report, result.stderr[-2000:])
    assert report['url'].startswith(public_url + '/catalog')


@pytest.mark.parametrize('namespace, selector', [
    ('kube-system', 'k8s-app=kube-dns'),
    ('kube-system', 'k8s-app=hostpath-provisioner'),
    ('container-registry', 'app=registry'),
], ids=['dns', 'hostpath-storage', 'registry'])
def test_the_other_addons_pods_are_ready(namespace: str, selector: str) -> None:
    pods = kubectl_json('get', 'pods', '-n', namespace, '-l', selector)['items']
    assert pods and all(ready(pod) for pod in pods)
