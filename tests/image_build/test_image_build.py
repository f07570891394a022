# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""`make deploy`'s path with no image variable, on the test cluster (TESTCLUSTER_INSTANCE): site.yml
in laptop mode (tests/image_build/deploy.yml: microk8s skipped, its kubeconfig and containerd the
test cluster's) builds the example app (yarn, in a copy of examples/backstage-app) and its
backend, frontend and rotation runner with podman (Debian's) from the product's recipes, FROM the
project's offline bases given as build arguments, imports them and deploys them; a re-run builds
nothing and changes nothing. The archives stay in the cache between runs, keyed by their inputs
as every build of the rig: a run builds only after a change of the app, the recipes or the
collection. Then the README's one
vars file for your own images (examples/images.yml), used verbatim, deploys those images.

podman runs with a configuration and a store of this test's (CONTAINERS_CONF,
CONTAINERS_STORAGE_CONF), where the bases are loaded; the product runs plain `podman`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'lib'))

from testcluster import (  # noqa: E402  (tests/lib)
    REPO, Cluster, Kubectl, ansible_env, ansible_playbook, artifacts_dir, isolated_collections_path,
    play_recap, wait_until,
)

NAMESPACE = 'image-build'
PLAYBOOK = REPO / 'tests' / 'image_build' / 'deploy.yml'
CACHE = Path(os.environ.get('BACKSTAGE_K8S_CACHE') or Path.home() / '.cache' / 'backstage-k8s')
WORK = CACHE / 'image-build-test'
CA = '/etc/ssl/certs/ca-certificates.crt'
BASES = ['backstage-backend-build-base', 'backstage-backend-base', 'backstage-frontend-base', 'ee-base']
ARTIFACTS = artifacts_dir('image-build')


def built(*names: str) -> Dict[str, str]:
    """tests/images/build NAMES: {name: "ARCHIVE REFERENCE"} (cached archives are reused)."""
    out = subprocess.run([str(REPO / 'tests' / 'images' / 'build'), *names], check=True,
                         capture_output=True, text=True).stdout.split('\n')
    lines = [line for line in out if line.count(' ') == 1]
    return dict(zip(names, lines))


@pytest.fixture(scope='module')
def cluster() -> Cluster:
    cluster = Cluster()
    if not cluster.is_up():
        pytest.fail('the test cluster is not up: TESTCLUSTER_INSTANCE={0} tests/cluster/cluster up'.format(
            cluster.instance))
    return cluster


@pytest.fixture(scope='module')
def podman_env() -> Dict[str, str]:
    """A podman configuration and store of this test's, holding the offline bases."""
    WORK.mkdir(parents=True, exist_ok=True)
    conf = WORK / 'containers.conf'
    conf.write_text('[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    storage = WORK / 'storage.conf'
    storage.write_text('[storage]\ndriver = "overlay"\ngraphroot = "{0}"\nrunroot = "/run/bk8s-image-build-test"\n'
                       .format(WORK / 'storage'))
    # Yarn's cache: the one tests/backstage-app/build.sh fills (the same lockfile).
    yarn_cache = CACHE / 'backstage-app' / 'yarn-cache'
    return dict(os.environ, CONTAINERS_CONF=str(conf), CONTAINERS_STORAGE_CONF=str(storage),
                YARN_CACHE_FOLDER=str(yarn_cache), YARN_ENABLE_GLOBAL_CACHE='0', CI='true')


@pytest.fixture(scope='module')
def bases(podman_env: Dict[str, str]) -> Dict[str, str]:
    """Each base loaded into the test's store: {name: localhost/<reference>}."""
    refs = {}
    for name, line in built(*BASES).items():
        archive, ref = line.split(' ')
        local = 'localhost/' + ref
        if subprocess.run(['podman', 'image', 'exists', local], env=podman_env, check=False).returncode != 0:
            out = subprocess.run(['podman', 'load', '-q', '-i', archive], env=podman_env, check=True,
                                 capture_output=True, text=True).stdout
            loaded = out.strip().splitlines()[-1].split(': ', 1)[1]
            subprocess.run(['podman', 'tag', loaded, local], env=podman_env, check=True)
        refs[name] = local
    return refs


@pytest.fixture(scope='module')
def postgres(cluster: Cluster) -> str:
    archive, ref = built('postgres')['postgres'].split(' ')
    cluster.ctr('images', 'import', archive)
    return ref


@pytest.fixture(scope='module')
def app_dir() -> str:
    """A copy of the example app's sources, which the product builds (yarn) in place. What yarn
    installed (node_modules) stays from run to run, so an install is incremental."""
    app = WORK / 'app'
    if app.exists():
        for path in [*app.iterdir(), *(app / 'packages').glob('*/*')]:
            if path.name not in ('node_modules', 'packages'):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    shutil.copytree(REPO / 'examples' / 'backstage-app', app, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns('node_modules', 'dist', 'dist-types'))
    return str(app)


@pytest.fixture(scope='module')
def build_vars(bases: Dict[str, str], app_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image_build variables: podman, the offline bases, the built example app."""
    variables = {
        'image_build_tool': 'podman',
        'image_build_app_dir': app_dir,
        'image_build_app_build': True,
        'image_build_dir': str(WORK / 'archives'),
        'image_build_backend_build_base': bases['backstage-backend-build-base'],
        'image_build_backend_base': bases['backstage-backend-base'],
        'image_build_frontend_base': bases['backstage-frontend-base'],
        'image_build_ee_base': bases['ee-base'],
        'image_build_ee_python': '/usr/bin/python3',
        # Registries through this host's network and the CAs it trusts (a TLS-inspecting proxy).
        'image_build_options': ['--network', 'host', '--volume', '{0}:{0}:ro'.format(CA)],
        'image_build_backend_build_args': ['NODE_EXTRA_CA_CERTS=' + CA],
    }
    path = tmp_path_factory.mktemp('image-build') / 'build-vars.json'
    path.write_text(json.dumps(variables))
    return path


class Deployed(NamedTuple):
    recap: Dict[str, int]
    url: str  # the URL site.yml printed


def deploy(name: str, postgres: str, podman_env: Dict[str, str], *args: str) -> Deployed:
    env = ansible_env(isolated_collections_path(), base=podman_env)
    start = time.monotonic()
    result = ansible_playbook(str(PLAYBOOK), '--skip-tags', 'microk8s', '-e', 'testcluster_repo=' + str(REPO),
                              '-e', 'image_build_test_postgres=' + postgres, *args, env=env, timeout=3600)
    seconds = time.monotonic() - start
    (ARTIFACTS / (name + '.log')).write_text(result.stdout + result.stderr)
    (ARTIFACTS / (name + '.seconds')).write_text('{0:.1f}\n'.format(seconds))
    assert result.returncode == 0, '{0} failed:\n{1}\n{2}'.format(name, result.stdout[-5000:], result.stderr[-2000:])
    printed = re.search(r'Backstage is up: open (\S+?)"', result.stdout)
    assert printed, 'site.yml printed no URL:\n' + result.stdout[-3000:]
    return Deployed(play_recap(result.stdout), printed[1])


def images_in(kubectl: Kubectl) -> Dict[str, str]:
    images = {}
    for deployment in kubectl.get('deployments')['items']:
        images[deployment['metadata']['name']] = deployment['spec']['template']['spec']['containers'][0]['image']
    cronjob = [c for c in kubectl.get('cronjobs')['items'] if 'rotation' in c['metadata']['name']][0]
    images['rotation'] = cronjob['spec']['jobTemplate']['spec']['template']['spec']['containers'][0]['image']
    return images


def serves(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except Exception as error:  # noqa: BLE001  (any failure is "not yet")
        return getattr(error, 'code', 0)


@pytest.fixture(scope='module')
def first_deploy(cluster: Cluster, postgres: str, podman_env: Dict[str, str], build_vars: Path) -> Iterator[Deployed]:
    def delete_namespace() -> None:
        Kubectl(env=cluster.env).run('delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait', timeout=300,
                                     namespaced=False)

    delete_namespace()
    yield deploy('deploy', postgres, podman_env, '-e', '@' + str(build_vars))
    # Its Ingress has no host (the URL site.yml prints is the cluster's): left behind, it would
    # answer for every host the later tiers' Ingresses do not claim.
    delete_namespace()


def test_no_image_variables_builds_imports_and_deploys_the_example_app(
        first_deploy: Deployed, cluster: Cluster) -> None:
    archives = sorted(p.name for p in (WORK / 'archives').glob('*.tar'))
    assert [a.rsplit('-', 1)[0] for a in archives] == ['backstage-backend', 'backstage-frontend', 'ee'], archives
    kubectl = Kubectl(NAMESPACE, cluster.env)
    images = images_in(kubectl)
    assert images['backstage-backend'].startswith('localhost/backstage-k8s/backstage-backend:'), images
    assert images['backstage-frontend'].startswith('localhost/backstage-k8s/backstage-frontend:'), images
    assert images['rotation'].startswith('localhost/backstage-k8s/ee:'), images
    # Each tag is its archive's input digest.
    for image in images.values():
        assert any(a.split('-')[-1].startswith(image.rsplit(':', 1)[1]) for a in archives), (image, archives)
    # The printed URL: the backend ready and the frontend served there (through the Ingress).
    url = first_deploy.url
    assert url == cluster.env['TESTCLUSTER_INGRESS_URL']
    wait_until('the backend ready through the Ingress', lambda: serves(url + '/.backstage/health/v1/readiness'),
               300, 3, until=lambda status: status == 200)
    wait_until('the frontend through the Ingress', lambda: serves(url + '/'), 120, 3,
               until=lambda status: status == 200)


def test_second_run_builds_nothing_and_changes_nothing(
        first_deploy: Deployed, postgres: str, podman_env: Dict[str, str], build_vars: Path) -> None:
    before = {p.name: p.stat().st_mtime for p in (WORK / 'archives').glob('*.tar')}
    recap = deploy('deploy-again', postgres, podman_env, '-e', '@' + str(build_vars)).recap
    assert recap['changed'] == 0, recap
    assert {p.name: p.stat().st_mtime for p in (WORK / 'archives').glob('*.tar')} == before


def test_own_images_vars_file_verbatim_deploys_those_images(
        first_deploy: Deployed, cluster: Cluster, postgres: str, podman_env: Dict[str, str],
        tmp_path: Path) -> None:
    """examples/images.yml byte for byte; its four values given as -e (its own variables)."""
    vars_file = tmp_path / 'my-images.yml'
    shutil.copyfile(REPO / 'examples' / 'images.yml', vars_file)
    kubectl = Kubectl(NAMESPACE, cluster.env)
    built_images = images_in(kubectl)
    own = {'images_backend': 'localhost/mine/backstage:1.0', 'images_frontend': 'localhost/mine/frontend:1.0',
           'images_rotation': 'localhost/mine/ee:1.0'}
    archives = {p.name.rsplit('-', 1)[0]: p for p in (WORK / 'archives').glob('*.tar')}
    for key, source, archive in (('images_backend', 'backstage-backend', 'backstage-backend'),
                                 ('images_frontend', 'backstage-frontend', 'backstage-frontend'),
                                 ('images_rotation', 'rotation', 'ee')):
        # Your images in podman's store: the built ones under other names (loaded from their
        # archives when an earlier run built them).
        if subprocess.run(['podman', 'image', 'exists', built_images[source]], env=podman_env,
                          check=False).returncode != 0:
            subprocess.run(['podman', 'load', '-q', '-i', str(archives[archive])], env=podman_env, check=True)
        subprocess.run(['podman', 'tag', built_images[source], own[key]], env=podman_env, check=True)
    deploy('own-images', postgres, podman_env, '-e', '@' + str(vars_file),
           '-e', json.dumps(dict(own, images_source='podman')))
    assert images_in(kubectl) == {'backstage-backend': own['images_backend'],
                                  'backstage-frontend': own['images_frontend'],
                                  'rotation': own['images_rotation']}
    url = cluster.env['TESTCLUSTER_INGRESS_URL']
    wait_until('the backend ready through the Ingress', lambda: serves(url + '/.backstage/health/v1/readiness'),
               300, 3, until=lambda status: status == 200)
