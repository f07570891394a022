# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""microk8s that is not running: stopped with `microk8s stop`, or whose services died. What
microk8s's own wrappers say and do, and what the role does then. Runs after test_default.py (it
stops and starts microk8s, and leaves it running with its addons)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

EPHEMERAL = Path(os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '/nonexistent'))
SCENARIO = Path(__file__).resolve().parents[1]
CLUSTER = SCENARIO.parents[1] / 'tests' / 'cluster' / 'cluster'
MICROK8S = EPHEMERAL / 'microk8s' / 'bin' / 'microk8s'
# The instance molecule/default's create brought up, bare (microk8s's addons are its objects).
CLUSTER_ENV = dict(os.environ, TESTCLUSTER_INSTANCE=os.environ.get('MICROK8S_SNAP_INSTANCE', ''),
                   TESTCLUSTER_ADDONS='none')
ADDONS = ['dns', 'hostpath-storage', 'registry', 'ingress']


def microk8s(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MICROK8S), *args], capture_output=True, text=True, timeout=timeout, check=False)


def converge(**variables: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1')
    return subprocess.run(['ansible-playbook', str(SCENARIO / 'converge.yml'), '-e', json.dumps(variables)],
                          capture_output=True, text=True, env=env, timeout=1200, check=False)


def enabled_addons() -> set[str]:
    status = microk8s('status', '--wait-ready', '--timeout', '300', '--format', 'short')
    assert status.returncode == 0, status.stdout + status.stderr
    return set(re.findall(r'^core/([a-z0-9-]+): enabled$', status.stdout, re.MULTILINE))


@pytest.fixture
def running_afterwards() -> Iterator[None]:
    """Whatever a test does, microk8s runs again after it (started the way a user would)."""
    yield
    if (EPHEMERAL / 'microk8s' / 'data' / 'var' / 'lock' / 'stopped.lock').exists():
        microk8s('start')
    subprocess.run([str(CLUSTER), 'up'], env=CLUSTER_ENV, capture_output=True, timeout=900, check=True)
    assert set(ADDONS) <= enabled_addons()


@pytest.mark.usefixtures('running_afterwards')
def test_stopped_microk8s_says_so_and_starts_again_with_its_addons() -> None:
    stop = microk8s('stop')
    assert stop.returncode == 0, stop.stdout + stop.stderr
    status = microk8s('status')
    assert 'microk8s is not running, try microk8s start' in status.stdout
    kubectl = microk8s('kubectl', 'get', 'nodes')
    assert kubectl.returncode == 1 and 'microk8s is not running, try microk8s start' in kubectl.stderr

    start = microk8s('start')
    assert start.returncode == 0, start.stdout + start.stderr
    assert set(ADDONS) <= enabled_addons()


@pytest.mark.usefixtures('running_afterwards')
def test_when_microk8s_services_are_down_the_role_fails_with_microk8s_own_message() -> None:
    subprocess.run([str(CLUSTER), 'down'], env=CLUSTER_ENV, capture_output=True, timeout=300, check=True)
    done = converge(microk8s_wait_timeout=20)
    assert done.returncode != 0
    assert 'microk8s is not running. Use microk8s inspect for a deeper inspection.' in done.stdout + done.stderr


@pytest.mark.usefixtures('running_afterwards')
def test_the_role_starts_a_stopped_microk8s() -> None:
    stop = microk8s('stop')
    assert stop.returncode == 0, stop.stdout + stop.stderr
    done = converge(microk8s_wait_timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert microk8s('status', '--format', 'short').stdout.startswith('microk8s is running')
