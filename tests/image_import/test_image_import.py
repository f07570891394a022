# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The image_import role against a real containerd: the test cluster's when it is up
(``eval "$(tests/cluster/cluster env)"``), otherwise one started here from Debian's package.

The image is an OCI archive built offline with umoci (tests/cluster/oci-image, busybox inside),
with a label unique to the run so that its digest is new to the containerd. The same image is
loaded into podman (Debian's, rootful) to test streaming from a local image store, through podman
and through the docker command line (Debian's podman-docker), and pushed to a registry (Debian's
docker-registry, on 127.0.0.1) to test the registry method.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import socket
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'lib'))

from testcluster import (  # noqa: E402  (tests/lib)
    CLUSTER_DIR, REPO, Kubectl, ansible_env, ansible_playbook, isolated_collections_path, wait_until,
)

PLAYBOOK = REPO / 'tests' / 'image_import' / 'import.yml'
OCI_IMAGE = CLUSTER_DIR / 'oci-image'
RUN = uuid.uuid4().hex[:10]
NAME = 'localhost/backstage-k8s-test/import-{0}:1.0'.format(RUN)
COLLECTIONS_PATH = isolated_collections_path()


class Run(NamedTuple):
    returncode: int
    output: str
    changed: int
    failed: int
    seconds: float


def digest_of(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile('./index.json') or tar.extractfile('index.json')
        assert member is not None
        return json.load(member)['manifests'][0]['digest']


def build_archive(directory: Path, label: str) -> Path:
    out = directory / '{0}.tar'.format(label)
    subprocess.run([str(OCI_IMAGE), str(out), '1.0', '--busybox', '--label', 'org.backstage-k8s.test=' + label,
                    '--', '/bin/sleep', '3600'], check=True, capture_output=True)
    return out


@pytest.fixture(scope='module')
def ctr_command() -> Iterator[List[str]]:
    """ctr against the test cluster's containerd, or against a containerd started for these tests."""
    address = os.environ.get('TESTCLUSTER_CONTAINERD_ADDRESS')
    if address and Path(address).exists():
        yield ['ctr', '--address', address, '-n', 'k8s.io']
        return
    for tool in ('containerd', 'ctr', 'umoci'):
        assert shutil.which(tool), '{0} is missing: run tests/image_import/setup-host.sh'.format(tool)
    work = Path(tempfile.mkdtemp(prefix='bk8s-containerd-'))
    socket = work / 'containerd.sock'
    log = open(work / 'containerd.log', 'wb')
    daemon = subprocess.Popen(['containerd', '--root', str(work / 'root'), '--state', str(work / 'state'),
                               '--address', str(socket)], stdout=log, stderr=subprocess.STDOUT)
    command = ['ctr', '--address', str(socket), '-n', 'k8s.io']
    try:
        def answer() -> subprocess.CompletedProcess:
            assert daemon.poll() is None, (work / 'containerd.log').read_text()
            return subprocess.run(command + ['version'], capture_output=True, text=True, check=False)
        wait_until('containerd to answer', answer, timeout=30, interval=0.2, until=lambda done: done.returncode == 0,
                   diagnostics=lambda: (work / 'containerd.log').read_text()[-3000:])
        yield command
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        subprocess.run(['umount', '-R', str(work / 'state')], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope='module')
def archives(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    directory = tmp_path_factory.mktemp('archives')
    return {'first': build_archive(directory, 'first-' + RUN), 'second': build_archive(directory, 'second-' + RUN)}


@pytest.fixture(scope='module', autouse=True)
def remove_test_images(ctr_command: List[str]) -> Iterator[None]:
    yield
    names = [n for n in images(ctr_command) if 'backstage-k8s-test/import-' + RUN in n]
    if names:
        subprocess.run(ctr_command + ['images', 'rm'] + names, capture_output=True, check=False)


def images(ctr_command: List[str]) -> Dict[str, str]:
    """name -> digest, as ctr lists them."""
    out = subprocess.run(ctr_command + ['images', 'ls'], capture_output=True, text=True, check=True).stdout
    return {f[0]: f[2] for f in (line.split() for line in out.splitlines()[1:]) if len(f) >= 3}


def play(ctr_command: List[str], name: str, archive: Optional[Path], *extra: str,
         search_path: Optional[str] = None, **variables: Any) -> Run:
    """Run the role for one image; SEARCH_PATH replaces PATH (where the role finds docker)."""
    item = {'name': name, 'archive': str(archive)} if archive else {'name': name, 'source': variables.pop('source')}
    variables.update(image_import_images=[item], image_import_ctr_command=ctr_command)
    env = ansible_env(COLLECTIONS_PATH)
    if search_path is not None:
        env['PATH'] = search_path
    start = time.monotonic()
    done = ansible_playbook(str(PLAYBOOK), '-e', json.dumps(variables), *extra, env=env, timeout=1800)
    seconds = time.monotonic() - start
    recap = re.search(r'localhost\s*:.*changed=(\d+).*failed=(\d+)', done.stdout)
    assert recap, done.stdout + done.stderr
    return Run(done.returncode, done.stdout + done.stderr, int(recap.group(1)), int(recap.group(2)), seconds)


@pytest.fixture(scope='module')
def first_import(ctr_command: List[str], archives: Dict[str, Path]) -> Run:
    return play(ctr_command, NAME, archives['first'])


def test_first_run_imports_the_archive_under_its_name_with_the_archive_digest(
        first_import: Run, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    assert first_import.returncode == 0, first_import.output
    assert first_import.changed == 1
    assert 'Importing 1 of 1 images: {0} ('.format(NAME) in first_import.output
    assert images(ctr_command)[NAME] == digest_of(archives['first'])


def test_second_run_changes_nothing(
        first_import: Run, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    again = play(ctr_command, NAME, archives['first'])
    assert again.returncode == 0, again.output
    assert again.changed == 0, again.output
    assert 'Importing 0 of 1 images' in again.output
    print('no-op re-run: {0:.1f} s (first run {1:.1f} s)'.format(again.seconds, first_import.seconds))


def test_the_same_archive_under_another_tag_is_named_so_also_as_a_polled_job(
        first_import: Run, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    other = NAME.replace(':1.0', ':1.0-rc1')
    run = play(ctr_command, other, archives['first'], image_import_poll=1)
    assert run.returncode == 0 and run.changed == 1, run.output
    assert images(ctr_command)[other] == digest_of(archives['first'])


def test_check_mode_reports_the_import_and_imports_nothing(
        first_import: Run, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    name = NAME.replace(':1.0', ':check')
    run = play(ctr_command, name, archives['first'], '--check')
    assert run.returncode == 0, run.output
    assert 'Would import 1 of 1 images' in run.output and run.changed == 1
    assert name not in images(ctr_command)


def test_new_content_under_the_same_name_replaces_the_old(
        first_import: Run, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    name = NAME.replace(':1.0', ':moving')
    assert play(ctr_command, name, archives['first']).changed == 1
    run = play(ctr_command, name, archives['second'])
    assert run.returncode == 0 and run.changed == 1, run.output
    assert images(ctr_command)[name] == digest_of(archives['second']) != digest_of(archives['first'])


@pytest.mark.parametrize('name', ['localhost/backstage-k8s-test/x:latest', 'localhost/backstage-k8s-test/x'],
                         ids=['latest', 'no-tag'])
def test_names_without_a_real_tag_are_refused_and_nothing_is_imported(
        name: str, ctr_command: List[str], archives: Dict[str, Path]) -> None:
    run = play(ctr_command, name, archives['first'])
    assert run.returncode != 0 and run.failed == 1
    assert 'give it a real tag' in run.output
    assert not any(n.startswith('localhost/backstage-k8s-test/x') for n in images(ctr_command))


def test_a_pod_starts_from_the_imported_image(first_import: Run) -> None:
    if not (os.environ.get('TESTCLUSTER_KUBECTL') and os.environ.get('TESTCLUSTER_CONTAINERD_ADDRESS')
            and os.environ.get('KUBECONFIG')):
        pytest.skip('the test cluster is not up (eval "$(tests/cluster/cluster env)" after tests/cluster/cluster up)')
    # The cluster whose containerd the images went into, as the environment names it.
    kubectl = Kubectl('default', env=os.environ)
    pod = 'image-import-' + RUN
    manifest = {
        'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': pod, 'namespace': 'default'},
        'spec': {'containers': [{'name': 'main', 'image': NAME, 'imagePullPolicy': 'Never'}],
                 'terminationGracePeriodSeconds': 0},
    }
    kubectl('apply', '-f', '-', input=json.dumps(manifest))
    try:
        waited = kubectl.run('wait', '--for=condition=Ready', 'pod/' + pod, '--timeout=120s', timeout=150, check=False)
        described = kubectl('describe', 'pod', pod, check=False)
        assert waited.returncode == 0, described
    finally:
        kubectl('delete', 'pod', pod, '--wait=false', check=False)


PODMAN_NAME = 'localhost/backstage-k8s-test/podman-{0}:1.0'.format(RUN)


@pytest.fixture(scope='module')
def podman_image(archives: Dict[str, Path]) -> Iterator[str]:
    """The test image in podman's store under PODMAN_NAME; its image ID."""
    assert shutil.which('podman'), 'podman is missing: run tests/image_import/setup-host.sh'
    loaded = subprocess.run(['podman', 'load', '-q', '-i', str(archives['first'])], capture_output=True, text=True, check=True)
    source = loaded.stdout.strip().split()[-1]
    subprocess.run(['podman', 'tag', source, PODMAN_NAME], check=True, capture_output=True)
    image_id = subprocess.run(['podman', 'image', 'inspect', '--format', '{{.Id}}', PODMAN_NAME],
                              capture_output=True, text=True, check=True).stdout.strip()
    yield 'sha256:' + image_id
    subprocess.run(['podman', 'rmi', '-f', PODMAN_NAME, source], capture_output=True, check=False)


def config_digest_in_containerd(ctr_command: List[str], name: str) -> str:
    manifest = subprocess.run(ctr_command + ['content', 'get', images(ctr_command)[name]],
                              capture_output=True, check=True).stdout
    return json.loads(manifest)['config']['digest']


def test_a_podman_image_is_streamed_in_and_a_rerun_changes_nothing(ctr_command: List[str], podman_image: str) -> None:
    run = play(ctr_command, PODMAN_NAME, None, source='podman')
    assert run.returncode == 0 and run.changed == 1, run.output
    # The image ID podman reports is the config digest of what containerd now has under the name.
    assert config_digest_in_containerd(ctr_command, PODMAN_NAME) == podman_image
    again = play(ctr_command, PODMAN_NAME, None, source='podman')
    assert again.returncode == 0 and again.changed == 0, again.output


DOCKER_NAME = 'localhost/backstage-k8s-test/docker-{0}:1.0'.format(RUN)
# Debian's podman-docker: the docker command line, served by podman's engine (there is no Docker
# engine here). Another docker on PATH (a CLI without a daemon) must not be the one the role runs.
PODMAN_DOCKER = Path('/usr/bin/docker')


@pytest.fixture(scope='module')
def docker_search_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PATH with podman-docker's docker first."""
    assert PODMAN_DOCKER.is_file() and b'podman' in PODMAN_DOCKER.read_bytes(), \
        'podman-docker is missing: run tests/image_import/setup-host.sh'
    bindir = tmp_path_factory.mktemp('docker-cli')
    (bindir / 'docker').symlink_to(PODMAN_DOCKER)
    return '{0}:{1}'.format(bindir, os.environ['PATH'])


@pytest.fixture(scope='module')
def docker_image(podman_image: str, docker_search_path: str) -> Iterator[str]:
    """The test image under DOCKER_NAME, tagged with the docker CLI; its image ID."""
    env = dict(os.environ, PATH=docker_search_path)
    subprocess.run(['docker', 'tag', PODMAN_NAME, DOCKER_NAME], check=True, capture_output=True, env=env)
    yield podman_image
    subprocess.run(['docker', 'rmi', DOCKER_NAME], capture_output=True, check=False, env=env)


def test_a_docker_image_is_streamed_in_with_the_docker_cli_and_a_rerun_changes_nothing(
        ctr_command: List[str], docker_image: str, docker_search_path: str) -> None:
    run = play(ctr_command, DOCKER_NAME, None, source='docker', search_path=docker_search_path)
    assert run.returncode == 0 and run.changed == 1, run.output
    # docker image inspect's ID is the config digest of what containerd now has under the name.
    assert config_digest_in_containerd(ctr_command, DOCKER_NAME) == docker_image
    again = play(ctr_command, DOCKER_NAME, None, source='docker', search_path=docker_search_path)
    assert again.returncode == 0 and again.changed == 0, again.output


@pytest.fixture(scope='module')
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real registry (Debian's docker-registry) on 127.0.0.1; its host:port."""
    assert shutil.which('docker-registry'), 'docker-registry is missing: run tests/image_import/setup-host.sh'
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    work = tmp_path_factory.mktemp('registry')
    (work / 'config.yml').write_text(
        'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {0}\nhttp:\n  addr: 127.0.0.1:{1}\n'.format(work / 'data', port))
    log = open(work / 'registry.log', 'wb')
    daemon = subprocess.Popen(['docker-registry', 'serve', str(work / 'config.yml')], stdout=log, stderr=subprocess.STDOUT)
    try:
        def answer() -> str:
            assert daemon.poll() is None, (work / 'registry.log').read_text()
            try:
                with urllib.request.urlopen('http://127.0.0.1:{0}/v2/'.format(port), timeout=2) as response:
                    response.read()
                return 'answers'
            except OSError as error:
                return '{0}: {1}'.format(type(error).__name__, error)
        wait_until('the registry to answer', answer, timeout=30, interval=0.2, until=lambda seen: seen == 'answers',
                   diagnostics=lambda: (work / 'registry.log').read_text()[-3000:])
        yield 'localhost:{0}'.format(port)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()


def test_the_registry_method_pushes_once_and_the_registry_serves_the_same_image(
        ctr_command: List[str], podman_image: str, registry: str) -> None:
    run = play(ctr_command, PODMAN_NAME, None, source='podman', image_import_method='registry',
               image_import_registry=registry)
    assert run.returncode == 0 and run.changed == 1, run.output
    path = PODMAN_NAME.split('/', 1)[1].rsplit(':', 1)[0]
    request = urllib.request.Request('http://{0}/v2/{1}/manifests/1.0'.format(registry, path), headers={
        'Accept': 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'})
    manifest = json.loads(urllib.request.urlopen(request, timeout=10).read())
    assert manifest['config']['digest'] == podman_image
    again = play(ctr_command, PODMAN_NAME, None, source='podman', image_import_method='registry',
                 image_import_registry=registry)
    assert again.returncode == 0 and again.changed == 0, again.output
    subprocess.run(['podman', 'rmi', '-f', '{0}/{1}:1.0'.format(registry, path)], capture_output=True, check=False)


def multi_platform_archive(directory: Path, amd64: Path, arm64: Path) -> Path:
    """An OCI archive whose image is an index: linux/amd64 -> the image of ``amd64``, linux/arm64 ->
    the image of ``arm64`` (both built here, so both run on this machine; the index only labels them)."""
    layout = directory / 'multi'
    (layout / 'blobs' / 'sha256').mkdir(parents=True)
    descriptors = []
    for archive, architecture in ((amd64, 'amd64'), (arm64, 'arm64')):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and '/blobs/sha256/' in '/' + member.name.lstrip('./'):
                    source = tar.extractfile(member)
                    assert source is not None
                    (layout / 'blobs' / 'sha256' / Path(member.name).name).write_bytes(source.read())
        manifest = layout / 'blobs' / 'sha256' / digest_of(archive).split(':')[1]
        descriptors.append({'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': digest_of(archive),
                            'size': manifest.stat().st_size, 'platform': {'os': 'linux', 'architecture': architecture}})
    index = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json',
                        'manifests': descriptors}).encode()
    index_digest = hashlib.sha256(index).hexdigest()
    (layout / 'blobs' / 'sha256' / index_digest).write_bytes(index)
    (layout / 'oci-layout').write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / 'index.json').write_text(json.dumps({'schemaVersion': 2, 'manifests': [{
        'mediaType': 'application/vnd.oci.image.index.v1+json', 'digest': 'sha256:' + index_digest,
        'size': len(index), 'annotations': {'org.opencontainers.image.ref.name': '1.0'}}]}))
    out = directory / 'multi.tar'
    with tarfile.open(out, 'w') as tar:
        tar.add(layout, arcname='.')
    return out


def test_an_image_index_is_compared_on_the_cluster_nodes_platform_unless_one_is_given(
        ctr_command: List[str], archives: Dict[str, Path], podman_image: str, tmp_path: Path) -> None:
    # The cluster holds, under one name, an index whose linux/amd64 and linux/arm64 entries are two
    # different images; podman has the amd64 one under that name. The podman image is "already
    # there" when compared with the node's entry, read from its containerd, and not when compared with
    # another platform's (as linux/amd64, the modules' old default, is on Apple Silicon's arm64 VM).
    node = subprocess.run(ctr_command + ['plugins', 'ls'], capture_output=True, text=True, check=True).stdout
    node_platform = next(line.split()[2] for line in node.splitlines() if line.split()[:2] == ['io.containerd.grpc.v1', 'cri'])
    if os.environ.get('KUBECONFIG'):
        arch = Kubectl(env=os.environ)('get', 'nodes', '-o', 'jsonpath={.items[0].status.nodeInfo.architecture}').strip()
        assert node_platform == 'linux/' + arch
    if node_platform != 'linux/amd64':
        pytest.skip('the index of this test has the test image (amd64) as its amd64 entry; this node is ' + node_platform)
    archive = multi_platform_archive(tmp_path, archives['first'], archives['second'])
    name = 'localhost/backstage-k8s-test/import-{0}-multi:1.0'.format(RUN)
    imported = play(ctr_command, name, archive)
    assert imported.returncode == 0, imported.output
    assert images(ctr_command)[name] == digest_of(archive)
    subprocess.run(['podman', 'tag', PODMAN_NAME, name], check=True, capture_output=True)
    try:
        same = play(ctr_command, name, None, '-v', source='podman')
        assert same.returncode == 0 and same.changed == 0, same.output
        assert '"platform": "linux/amd64"' in same.output, same.output
        # The arm64 entry is the other image: "would import" where the containerd has its content
        # (another test here imported it), else the error that says the platform may not be the node's.
        other = play(ctr_command, name, None, '--check', source='podman', image_import_node_platform='linux/arm64')
        assert ((other.returncode == 0 and other.changed == 1)
                or (other.returncode != 0 and 'has a manifest for linux/arm64, which cannot be read' in other.output)), other.output
    finally:
        subprocess.run(['podman', 'rmi', name], capture_output=True, check=False)
