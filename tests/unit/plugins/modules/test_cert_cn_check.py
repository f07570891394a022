# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""backstage.k8s.cert_cn_check as a module: its arguments, results and failures."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.backstage.k8s.plugins.modules import cert_cn_check

REPO = Path(__file__).resolve().parents[4]
PLAYBOOK = REPO / 'tests' / 'playbook' / 'cert_cn_check.yml'
# .../ansible_collections/backstage/k8s/plugins/modules/cert_cn_check.py -> the directory holding ansible_collections
COLLECTIONS_PATH = Path(cert_cn_check.__file__).parents[5]
RESULT_KEYS = {'cn', 'common_names', 'subject', 'serial', 'issuer', 'not_before', 'not_after', 'days_left', 'matches'}


def run_module(capsys: pytest.CaptureFixture, check_mode: bool = False, **args: Any) -> Tuple[int, Dict[str, Any]]:
    """Run the module in this process as Ansible would, return its exit code and JSON result."""
    if check_mode:
        args['_ansible_check_mode'] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        cert_cn_check.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def files(tmp_path: Path, pki, ca) -> Path:
    """PEM files for the cases, the way the pki role lays them out."""
    (tmp_path / 'ca.crt').write_text(ca.pem)
    # 44 days and an hour left when the test runs, whenever the session's PKI was made.
    not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=44, hours=1)
    (tmp_path / 'good.crt').write_text(pki.client(ca, valid_from_days=-1, not_after=not_after).pem)
    (tmp_path / 'wrong-cn.crt').write_text(pki.client(ca, ['Postgres']).pem)
    (tmp_path / 'tls.key').write_text(pki.client(ca).key_pem)
    (tmp_path / 'garbage.crt').write_text('not a certificate\n')
    return tmp_path


@pytest.mark.parametrize('check_mode', [False, True], ids=['normal', 'check-mode'])
def test_matching_certificate_is_accepted_and_described(capsys, files, check_mode):
    rc, result = run_module(capsys, check_mode=check_mode, certificate_path=str(files / 'good.crt'),
                            ca_certificate_path=str(files / 'ca.crt'), user='postgres', min_days_left=15)
    assert rc == 0, result
    assert result['changed'] is False
    assert RESULT_KEYS <= set(result)
    assert (result['cn'], result['matches'], result['days_left'], result['problems']) == ('postgres', True, 44, [])
    assert result['issuer'] == 'CN=backstage-k8s test CA'


def test_certificate_and_ca_can_be_given_as_content(capsys, pki, ca):
    rc, result = run_module(capsys, certificate=pki.client(ca).pem, ca_certificate=ca.pem, database_user='postgres')
    assert rc == 0, result
    assert result['matches'] is True


@pytest.mark.parametrize('check_mode', [False, True], ids=['normal', 'check-mode'])
def test_wrong_cn_is_refused_naming_the_cn_and_the_user(capsys, files, check_mode):
    rc, result = run_module(capsys, check_mode=check_mode, certificate_path=str(files / 'wrong-cn.crt'),
                            ca_certificate_path=str(files / 'ca.crt'), user='postgres')
    assert rc == 1
    assert result['failed'] is True
    assert result['msg'].startswith('certificate_path {0}: certificate CN "Postgres" does not match the '
                                    'database user "postgres"'.format(files / 'wrong-cn.crt'))
    assert (result['cn'], result['matches']) == ('Postgres', False)
    assert RESULT_KEYS <= set(result)


def test_certificate_from_another_ca_is_refused(capsys, pki, files):
    rc, result = run_module(capsys, certificate=pki.client(pki.other_ca).pem,
                            ca_certificate_path=str(files / 'ca.crt'), user='postgres')
    assert rc == 1
    assert result['msg'] == 'certificate was issued by "CN=other CA", not by the given CA "CN=backstage-k8s test CA"'


def test_too_few_days_left_is_refused(capsys, files):
    rc, result = run_module(capsys, certificate_path=str(files / 'good.crt'), user='postgres', min_days_left=45)
    assert rc == 1
    assert 'fewer than min_days_left=45' in result['msg']
    assert result['days_left'] == 44


@pytest.mark.parametrize('args, message', [
    ({'certificate_path': 'garbage.crt'}, 'certificate_path {dir}/garbage.crt is not a PEM certificate'),
    ({'certificate': ''}, 'certificate is empty'),
    ({'certificate_path': 'missing.crt'}, 'cannot read certificate_path {dir}/missing.crt: No such file or directory'),
    ({'certificate_path': 'tls.key'}, 'certificate_path {dir}/tls.key contains a private key ("PRIVATE KEY" block), '
                                      'not a certificate'),
    ({'certificate_path': 'good.crt', 'ca_certificate_path': 'garbage.crt'},
     'ca_certificate_path {dir}/garbage.crt is not a PEM certificate'),
    ({'certificate_path': 'good.crt', 'user': ''}, 'user must not be empty'),
    ({'certificate_path': 'good.crt', 'min_days_left': -1}, 'min_days_left must be 0 or more, got -1'),
], ids=['garbage', 'empty', 'missing-file', 'private-key', 'garbage-ca', 'empty-user', 'negative-days'])
def test_unusable_input_fails_with_a_message_and_no_traceback(capsys, files, args, message):
    args = {key: str(files / value) if key.endswith('_path') else value for key, value in args.items()}
    args.setdefault('user', 'postgres')
    rc, result = run_module(capsys, **args)
    assert rc == 1
    assert result['msg'].startswith(message.format(dir=files)), result['msg']
    assert 'Traceback' not in json.dumps(result)


def test_a_private_key_given_as_certificate_is_not_echoed(capsys, files):
    key = (files / 'tls.key').read_text()
    rc, result = run_module(capsys, certificate=key, user='postgres')
    assert rc == 1
    assert key.splitlines()[1] not in json.dumps(result)


@pytest.mark.parametrize('args, message', [
    ({'user': 'postgres'}, 'one of the following is required: certificate, certificate_path'),
    ({'user': 'postgres', 'certificate': 'not-a-certificate', 'certificate_path': '/x'},
     'parameters are mutually exclusive: certificate|certificate_path'),
    ({'user': 'postgres', 'certificate': 'not-a-certificate', 'ca_certificate': 'not-a-certificate', 'ca_certificate_path': '/x'},
     'parameters are mutually exclusive: ca_certificate|ca_certificate_path'),
    ({'certificate': 'not-a-certificate'}, 'missing required arguments: user'),
], ids=['no-certificate', 'certificate-twice', 'ca-twice', 'no-user'])
def test_argument_rules_are_enforced(capsys, args, message):
    rc, result = run_module(capsys, **args)
    assert rc == 1
    assert result['msg'] == message


def _ansible_env(tmp_path: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-local-tmp'),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / 'ansible-remote-tmp'),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_RETRY_FILES_ENABLED='0',
    )
    return env


def _ansible_command(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail('{0} not found beside {1} nor on PATH'.format(name, sys.executable))
    return found


@pytest.mark.parametrize('mode', [[], ['--check']], ids=['normal', 'check-mode'])
def test_playbook_accepts_the_right_certificate_and_refuses_the_wrong_one(files, mode):
    completed = subprocess.run(
        [_ansible_command('ansible-playbook'), str(PLAYBOOK), '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter={0}'.format(sys.executable), '-e', 'certificate_dir={0}'.format(files)]
        + mode,
        env=_ansible_env(files), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout
    recap = completed.stdout[completed.stdout.index('PLAY RECAP'):]
    assert 'failed=0' in recap and 'rescued=2' in recap, completed.stdout


def test_ad_hoc_refusal_names_the_cn_and_the_user(files):
    completed = subprocess.run(
        [_ansible_command('ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter={0}'.format(sys.executable), '-m', 'backstage.k8s.cert_cn_check',
         '-a', 'certificate_path={0} user=postgres'.format(files / 'wrong-cn.crt')],
        env=_ansible_env(files), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
        check=False,
    )
    assert completed.returncode == 2, completed.stdout
    assert 'certificate CN "Postgres" does not match the database user "postgres"' in completed.stdout
    assert 'Traceback' not in completed.stdout
