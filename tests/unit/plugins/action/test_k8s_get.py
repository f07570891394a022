# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""backstage.k8s.k8s_get: what it keeps of a Secret with secret_keys, and the arguments it refuses
before any API call (a real ansible-playbook; the reads themselves run against the test cluster in
molecule/postgres/tests/test_k8s_get.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.backstage.k8s.plugins.plugin_utils._kubernetes import (
    LAST_APPLIED_ANNOTATION,
    keep_secret_keys,
)

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')

SECRET = {
    'apiVersion': 'v1',
    'kind': 'Secret',
    'type': 'kubernetes.io/tls',
    'metadata': {'name': 'client', 'annotations': {LAST_APPLIED_ANNOTATION: '{"data": {"tls.key": "S0VZ"}}',
                                                   'backstage.k8s/serial': '42'}},
    'data': {'tls.crt': 'Q0VSVA==', 'tls.key': 'S0VZ', 'ca.crt': 'Q0E='},
    'stringData': {'tls.key': 'KEY', 'note': 'x'},
}


def test_only_the_keys_asked_for_are_kept_and_the_last_applied_copy_goes() -> None:
    kept = keep_secret_keys(SECRET, ['tls.crt', 'ca.crt'])
    assert kept['data'] == {'tls.crt': 'Q0VSVA==', 'ca.crt': 'Q0E='}
    assert kept['stringData'] == {}
    assert kept['metadata']['annotations'] == {'backstage.k8s/serial': '42'}
    assert kept['type'] == 'kubernetes.io/tls' and kept['metadata']['name'] == 'client'
    # The Secret as read is left as it was.
    assert SECRET['data']['tls.key'] == 'S0VZ' and LAST_APPLIED_ANNOTATION in SECRET['metadata']['annotations']


def test_no_keys_asked_for_keeps_no_data_and_none_given_keeps_all() -> None:
    assert keep_secret_keys(SECRET, [])['data'] == {}
    assert keep_secret_keys(SECRET, None) is SECRET
    assert keep_secret_keys({'kind': 'Secret', 'metadata': {'name': 'empty'}}, ['tls.crt']) == {
        'kind': 'Secret', 'metadata': {'name': 'empty'}}


@pytest.mark.parametrize(('arguments', 'message'), [
    ('kind: Secret\n        objects: [{kind: Secret, name: a}]', 'parameters are mutually exclusive: objects|kind'),
    ('name: a\n        objects: [{kind: Secret}]', 'parameters are mutually exclusive: objects|name'),
    ('namespace: backstage', 'one of the following is required: kind, objects'),
    ('objects: [{name: a}]', 'missing required arguments: kind found in objects'),
    ('objects: [{kind: Secret, nam: a}]', 'nam'),
])
def test_arguments_that_do_not_make_a_read_are_refused_before_any_api_call(
        tmp_path: Path, arguments: str, message: str) -> None:
    playbook = tmp_path / 'play.yml'
    playbook.write_text(
        '- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n'
        '    - backstage.k8s.k8s_get:\n        ' + arguments + '\n'
        # No cluster: a read that got as far as the API would fail on this, with another message.
        '        kubeconfig: ' + str(tmp_path / 'no-such-kubeconfig') + '\n')
    result = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', str(playbook)], capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR='1'), cwd=tmp_path, timeout=120, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout + result.stderr
