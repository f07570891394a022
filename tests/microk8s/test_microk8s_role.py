# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The microk8s role on a machine that cannot install microk8s: it must stop before changing
anything and say what to do. (Where snap or Homebrew exist, molecule/default runs the role for real.)
Its readiness wait runs against the test cluster when it is up."""

from __future__ import annotations

import os
import re
import shutil
import json
import sys
from pathlib import Path
from typing import Optional, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'lib'))

from testcluster import Kubectl, ansible_env, ansible_playbook, isolated_collections_path  # noqa: E402  (tests/lib)

PLAYBOOK = Path(__file__).parent / 'play.yml'
COLLECTIONS_PATH = isolated_collections_path()


def play(*args: str, playbook: Path = PLAYBOOK) -> Tuple[int, str, int]:
    done = ansible_playbook(str(playbook), *args, env=ansible_env(COLLECTIONS_PATH))
    recap = re.search(r'localhost\s*:.*changed=(\d+)', done.stdout)
    assert recap, done.stdout + done.stderr
    return done.returncode, done.stdout + done.stderr, int(recap.group(1))


@pytest.mark.skipif(sys.platform != 'linux' or Path('/usr/bin/snap').exists(), reason='needs Linux without snap')
@pytest.mark.parametrize('check', [False, True], ids=['run', 'check-mode'])
def test_without_snap_the_role_stops_unchanged_and_says_what_to_do(check: bool, tmp_path: Path) -> None:
    kubeconfig = tmp_path / 'kubeconfig'
    rc, output, changed = play('-e', 'microk8s_kubeconfig=' + str(kubeconfig), *(['--check'] if check else []))
    assert rc != 0 and changed == 0
    assert 'this machine has no snap command. Install snapd' in output
    assert 'backstage_k8s_kubeconfig' in output
    assert not kubeconfig.exists()


@pytest.mark.skipif(shutil.which('brew') is not None, reason='Homebrew is installed here')
def test_on_macos_without_homebrew_the_role_stops_unchanged_and_says_what_to_do() -> None:
    rc, output, changed = play('-e', 'microk8s_platform=macos')
    assert rc != 0 and changed == 0
    assert 'On macOS microk8s is installed with Homebrew' in output


def test_bad_variables_are_refused_before_anything_runs() -> None:
    rc, output, changed = play('-e', 'microk8s_platform=windows')
    assert rc != 0 and changed == 0
    assert 'microk8s_platform' in output and 'windows' in output


CLUSTER_UP = bool(os.environ.get('KUBECONFIG') and os.environ.get('TESTCLUSTER_API_URL'))
# The test cluster's add-ons in the role's microk8s_addon_pods form.
TEST_CLUSTER_ADDON_PODS = {
    'dns': {'namespace': 'kube-system', 'label_selectors': ['k8s-app=kube-dns']},
    'storage': {'namespace': 'local-path-storage', 'label_selectors': ['app=local-path-provisioner']},
    'ingress': {'namespace': 'ingress', 'label_selectors': ['app.kubernetes.io/name=traefik']},
    'nothing': {'namespace': 'kube-system', 'label_selectors': ['app=no-such-pod']},
}


def wait(addons: list, timeout: int, addon_pods: Optional[dict] = None) -> Tuple[int, str, int]:
    """The role's readiness wait on the test cluster; addon_pods None: the role's default."""
    variables = {
        'microk8s_kubeconfig_path': os.environ.get('KUBECONFIG', ''),
        'microk8s_kubeconfig_context': Kubectl(env=os.environ)('config', 'current-context').strip(),
        'microk8s_addons': addons,
        'microk8s_wait_timeout': timeout,
    }
    if addon_pods is not None:
        variables['microk8s_addon_pods'] = addon_pods
    return play('-e', json.dumps(variables), playbook=Path(__file__).parent / 'wait.yml')


@pytest.mark.skipif(not CLUSTER_UP, reason='the test cluster is not up (eval "$(tests/cluster/cluster env)" after tests/cluster/cluster up)')
def test_the_wait_ends_once_the_node_and_the_addon_pods_are_ready() -> None:
    rc, output, changed = wait(['core/dns', 'storage', 'ingress', 'not-waited-for'], 60, TEST_CLUSTER_ADDON_PODS)
    assert rc == 0, output
    assert changed == 0
    assert 'item=dns' in output and 'item=storage' in output and 'item=ingress' in output


@pytest.mark.skipif(not CLUSTER_UP, reason='the test cluster is not up (eval "$(tests/cluster/cluster env)" after tests/cluster/cluster up)')
def test_the_wait_fails_when_an_addon_has_no_ready_pod_in_time() -> None:
    rc, output, changed = wait(['dns', 'nothing'], 10, TEST_CLUSTER_ADDON_PODS)
    assert rc != 0
    assert 'item=nothing' in output and 'FAILED - RETRYING' in output


@pytest.mark.skipif(not CLUSTER_UP, reason='the test cluster is not up (eval "$(tests/cluster/cluster env)" after tests/cluster/cluster up)')
def test_the_default_ingress_wait_accepts_traefik_as_microk8s_1_35_deploys_it() -> None:
    # The test cluster's ingress is Traefik in the namespace ingress, labelled
    # app.kubernetes.io/name=traefik: the layout of microk8s 1.35's ingress addon. The role's default
    # microk8s_addon_pods must find it (and not wait for nginx's pods, which never come).
    rc, output, changed = wait(['core/dns', 'core/ingress'], 60)
    assert rc == 0, output
    assert changed == 0
    assert 'item=ingress' in output and 'FAILED - RETRYING' not in output
