# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""What a laptop user has after the bootstrap: a Ready node reached with the kubeconfig written,
the addons enabled and their pods Ready, and the image in microk8s's containerd. microk8s is the
one the scenario's create laid out (microk8s's own wrappers over the test cluster)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

EPHEMERAL = Path(os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '/nonexistent'))
KUBECONFIG = EPHEMERAL / 'kubeconfig'
MICROK8S = EPHEMERAL / 'microk8s' / 'bin' / 'microk8s'
IMAGE = 'localhost/backstage-k8s-test/laptop:1.0'


def microk8s(*args: str) -> str:
    return subprocess.run([str(MICROK8S), *args], capture_output=True, text=True, check=True).stdout


def kubectl_json(*args: str) -> Dict[str, Any]:
    out = microk8s('kubectl', '--kubeconfig', str(KUBECONFIG), *args, '-o', 'json')
    return json.loads(out)


def ready(item: Dict[str, Any]) -> bool:
    return any(c['type'] == 'Ready' and c['status'] == 'True' for c in item['status'].get('conditions', []))


def test_kubeconfig_is_private_and_reaches_a_ready_node() -> None:
    assert stat.S_IMODE(KUBECONFIG.stat().st_mode) == 0o600
    nodes = kubectl_json('get', 'nodes')['items']
    assert nodes and all(ready(node) for node in nodes)


def test_users_own_kubeconfig_is_untouched() -> None:
    home_config = Path.home() / '.kube' / 'config'
    if home_config.exists():
        assert 'microk8s' not in home_config.read_text() or os.environ.get('BACKSTAGE_K8S_EXPECT_MERGE')


@pytest.mark.parametrize('namespace, selector', [
    ('kube-system', 'k8s-app=kube-dns'),
    ('kube-system', 'k8s-app=hostpath-provisioner'),
    ('container-registry', 'app=registry'),
    ('ingress', 'name=nginx-ingress-microk8s'),
], ids=['dns', 'hostpath-storage', 'registry', 'ingress'])
def test_addon_pods_are_ready(namespace: str, selector: str) -> None:
    pods: List[Dict[str, Any]] = kubectl_json('get', 'pods', '-n', namespace, '-l', selector)['items']
    assert pods and all(ready(pod) for pod in pods)


def test_image_is_in_microk8s_containerd_with_the_archive_digest() -> None:
    with tarfile.open(EPHEMERAL / 'laptop-test.tar') as tar:
        member = tar.extractfile('./index.json')
        assert member is not None
        digest = json.load(member)['manifests'][0]['digest']
    listed = {f[0]: f[2] for f in (line.split() for line in microk8s('ctr', 'images', 'ls').splitlines()[1:]) if len(f) >= 3}
    assert listed.get(IMAGE) == digest
