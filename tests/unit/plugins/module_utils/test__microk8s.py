# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Reading microk8s status on outputs recorded from real microk8s versions (see fixtures/microk8s_status/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.backstage.k8s.plugins.module_utils._microk8s import (
    StatusError,
    addons_to_enable,
    merge_kubeconfig,
    parse_status,
)

FIXTURES = Path(__file__).parent / 'fixtures' / 'microk8s_status'
LAPTOP_ADDONS = ['dns', 'hostpath-storage', 'registry', 'ingress']


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_every_recorded_output_has_its_source_written_down() -> None:
    readme = (FIXTURES / 'README.md').read_text()
    outputs = sorted(p.name for p in FIXTURES.glob('*.txt'))
    assert outputs, 'no recorded outputs'
    for name in outputs:
        assert '`{0}`'.format(name) in readme and 'https://github.com/canonical/microk8s/pull/' in readme


def test_grouped_output_of_1_17_lists_enabled_and_disabled_addons() -> None:
    status = parse_status(recorded('v1.17-grouped-pr876.txt'))
    assert status.running is True
    assert status.as_dict()['enabled'] == ['dns', 'rbac']
    assert status.addons['storage'] == 'disabled' and status.addons['registry'] == 'disabled'
    assert len(status.addons) == 19


def test_list_output_of_1_19_reads_python_booleans_and_each_addon() -> None:
    status = parse_status(recorded('v1.19-list-ha-pr1374.txt'))
    assert status.running is True
    assert status.addons == {'dns': 'enabled', 'ha-cluster': 'enabled'}


def test_not_running_output_of_1_20_says_so_with_the_message() -> None:
    status = parse_status(recorded('v1.20-not-running-pr2193.txt'))
    assert status.running is False
    assert status.message.startswith('microk8s is not running')
    assert status.addons == {}


def test_addons_are_not_enabled_while_microk8s_is_not_running() -> None:
    with pytest.raises(StatusError, match='microk8s is not running. Use microk8s inspect'):
        addons_to_enable(parse_status(recorded('v1.20-not-running-pr2193.txt')), LAPTOP_ADDONS)


def test_only_disabled_addons_are_enabled_and_the_old_storage_name_is_used_where_it_is_the_one() -> None:
    status = parse_status(recorded('v1.17-grouped-pr876.txt'))
    # dns is enabled already; this microk8s calls hostpath-storage "storage".
    assert addons_to_enable(status, LAPTOP_ADDONS) == ['storage', 'registry', 'ingress']


def test_nothing_to_enable_when_every_wanted_addon_is_enabled() -> None:
    status = parse_status(recorded('v1.19-list-ha-pr1374.txt'))
    assert addons_to_enable(status, ['dns', 'core/dns', 'ha-cluster']) == []


def test_an_addon_this_microk8s_does_not_have_is_refused_with_the_list_it_has() -> None:
    status = parse_status(recorded('v1.19-list-ha-pr1374.txt'))
    with pytest.raises(StatusError, match=r'no addon ingress \(it has: dns, ha-cluster\)'):
        addons_to_enable(status, ['ingress'])


def test_a_repository_key_per_addon_as_microk8s_1_24_prints_it_is_read() -> None:
    # The recorded 1.19 output with the "repository:" line 1.24+ adds to each addon (status.py
    # prints it after name); the rest of the text is unchanged.
    text = recorded('v1.19-list-ha-pr1374.txt').replace(
        '    description: CoreDNS', '    repository: core\n    description: CoreDNS')
    status = parse_status(text)
    assert status.repositories == {'dns': 'core'}
    assert addons_to_enable(status, ['core/dns']) == []


def test_a_description_that_breaks_yaml_is_read_line_by_line() -> None:
    # microk8s prints descriptions unquoted: one with ": " in it makes the output invalid YAML.
    text = recorded('v1.19-list-ha-pr1374.txt').replace(
        'description: CoreDNS', 'description: CoreDNS: cluster DNS: {x')
    status = parse_status(text)
    assert status.running is True
    assert status.addons == {'dns': 'enabled', 'ha-cluster': 'enabled'}


@pytest.mark.parametrize('text', ['', 'hello', 'microk8s is running\naddons:\n'], ids=['empty', 'word', 'pretty-format'])
def test_output_that_is_not_the_yaml_status_is_refused(text: str) -> None:
    with pytest.raises(StatusError):
        parse_status(text)


MICROK8S_CONFIG = {
    'apiVersion': 'v1',
    'kind': 'Config',
    'clusters': [{'name': 'microk8s-cluster', 'cluster': {'server': 'https://10.0.0.5:16443',
                                                          'certificate-authority-data': 'Q0E='}}],
    'users': [{'name': 'admin', 'user': {'client-certificate-data': 'Q0VSVA==', 'client-key-data': 'S0VZ'}}],
    'contexts': [{'name': 'microk8s', 'context': {'cluster': 'microk8s-cluster', 'user': 'admin'}}],
    'current-context': 'microk8s',
}


def test_merge_keeps_every_other_context_and_the_current_one() -> None:
    existing = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'work',
        'clusters': [{'name': 'work', 'cluster': {'server': 'https://work:6443'}}],
        'users': [{'name': 'work', 'user': {'token': 't'}}],
        'contexts': [{'name': 'work', 'context': {'cluster': 'work', 'user': 'work'}}],
    }
    merged = merge_kubeconfig(existing, MICROK8S_CONFIG, 'microk8s')
    assert merged['current-context'] == 'work'
    assert [c['name'] for c in merged['contexts']] == ['work', 'microk8s']
    assert merged['contexts'][1]['context'] == {'cluster': 'microk8s', 'user': 'microk8s'}
    assert merged['clusters'][1]['cluster']['server'] == 'https://10.0.0.5:16443'
    assert existing['contexts'] == [{'name': 'work', 'context': {'cluster': 'work', 'user': 'work'}}]


def test_merge_again_replaces_its_own_entries_instead_of_adding_more() -> None:
    once = merge_kubeconfig(None, MICROK8S_CONFIG, 'microk8s')
    twice = merge_kubeconfig(once, MICROK8S_CONFIG, 'microk8s')
    assert once == twice
    assert once['current-context'] == 'microk8s'
