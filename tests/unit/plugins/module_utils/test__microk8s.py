# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Reading microk8s status on outputs recorded from real microk8s versions (see fixtures/microk8s_status/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.backstage.k8s.plugins.module_utils._microk8s import (
    Addon,
    StatusError,
    addon_pods_ready,
    addons_to_enable,
    label_selector_matches,
    merge_kubeconfig,
    parse_status,
)

FIXTURES = Path(__file__).parent / 'fixtures' / 'microk8s_status'
LAPTOP_ADDONS = ['dns', 'hostpath-storage', 'registry', 'ingress']


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def by_name(addons: tuple) -> dict:
    return {a.full_name: a.status for a in addons}


def test_every_recorded_output_has_its_source_written_down() -> None:
    readme = (FIXTURES / 'README.md').read_text()
    outputs = sorted(p.name for p in FIXTURES.glob('*.txt'))
    assert outputs, 'no recorded outputs'
    for name in outputs:
        assert '`{0}`'.format(name) in readme
    assert 'https://github.com/canonical/microk8s/pull/' in readme
    assert 'https://github.com/canonical/microk8s/blob/' in readme


def test_grouped_output_of_1_17_lists_enabled_and_disabled_addons() -> None:
    status = parse_status(recorded('v1.17-grouped-pr876.txt'))
    assert status.running is True
    assert status.as_dict()['enabled'] == ['dns', 'rbac']
    assert by_name(status.addons)['storage'] == 'disabled' and by_name(status.addons)['registry'] == 'disabled'
    assert len(status.addons) == 19


def test_list_output_of_1_19_reads_python_booleans_and_each_addon() -> None:
    status = parse_status(recorded('v1.19-list-ha-pr1374.txt'))
    assert status.running is True
    assert by_name(status.addons) == {'dns': 'enabled', 'ha-cluster': 'enabled'}


def test_not_running_output_of_1_20_says_so_with_the_message() -> None:
    status = parse_status(recorded('v1.20-not-running-pr2193.txt'))
    assert status.running is False
    assert status.message.startswith('microk8s is not running')
    assert status.addons == ()


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
    assert status.addons[0] == Addon('dns', 'core', 'enabled')
    assert addons_to_enable(status, ['core/dns']) == []


def test_a_description_that_breaks_yaml_is_read_line_by_line() -> None:
    # microk8s prints descriptions unquoted: one with ": " in it makes the output invalid YAML.
    text = recorded('v1.19-list-ha-pr1374.txt').replace(
        'description: CoreDNS', 'description: CoreDNS: cluster DNS: {x')
    status = parse_status(text)
    assert status.running is True
    assert by_name(status.addons) == {'dns': 'enabled', 'ha-cluster': 'enabled'}


@pytest.mark.parametrize('text', ['', 'hello', 'microk8s is running\naddons:\n'], ids=['empty', 'word', 'pretty-format'])
def test_output_that_is_not_the_yaml_status_is_refused(text: str) -> None:
    with pytest.raises(StatusError):
        parse_status(text)


# Outputs of microk8s's own code (generate.py runs it; fixtures/microk8s_status/README.md says how).

def test_not_running_message_that_status_py_indents_under_high_availability_is_kept() -> None:
    status = parse_status(recorded('status-py-yaml-not-running.txt'))
    assert status.running is False and status.stopped is False
    assert status.message == 'microk8s is not running. Use microk8s inspect for a deeper inspection.'
    with pytest.raises(StatusError, match=r'not running: microk8s is not running\. Use microk8s inspect'):
        addons_to_enable(status, LAPTOP_ADDONS)


def test_short_yaml_form_reads_the_repository_out_of_the_key() -> None:
    status = parse_status(recorded('status-py-short-yaml.txt'))
    assert status.running is True
    assert by_name(status.addons) == {'core/dns': 'enabled', 'core/ingress': 'enabled',
                                      'core/hostpath-storage': 'disabled', 'core/registry': 'disabled'}
    assert addons_to_enable(status, LAPTOP_ADDONS) == ['core/hostpath-storage', 'core/registry']
    assert addons_to_enable(status, ['core/dns', 'storage']) == ['core/hostpath-storage']


def test_short_yaml_form_not_running_carries_the_message() -> None:
    status = parse_status(recorded('status-py-short-yaml-not-running.txt'))
    assert status.running is False
    assert status.message == 'microk8s is not running. Use microk8s inspect for a deeper inspection.'


@pytest.mark.parametrize('wanted', [['core/ingress'], ['ingress']], ids=['with-repository', 'bare-name'])
def test_an_enabled_core_addon_is_not_hidden_by_a_disabled_one_of_the_same_name_elsewhere(wanted: list) -> None:
    status = parse_status(recorded('status-py-yaml-same-name-two-repositories.txt'))
    assert Addon('ingress', 'myrepo', 'disabled') in status.addons
    assert addons_to_enable(status, wanted) == []


def test_the_addon_of_a_named_repository_is_the_one_enabled() -> None:
    status = parse_status(recorded('status-py-yaml-same-name-two-repositories.txt'))
    assert addons_to_enable(status, ['myrepo/ingress', 'dns']) == ['myrepo/ingress']


def test_a_bare_name_in_several_repositories_none_of_them_core_must_name_one() -> None:
    text = recorded('status-py-yaml-same-name-two-repositories.txt').replace('repository: core', 'repository: other')
    with pytest.raises(StatusError, match=r'ingress is in several repositories \(other/ingress, myrepo/ingress\)'):
        addons_to_enable(parse_status(text), ['ingress'])


@pytest.mark.parametrize('name', ['utils-py-exit-if-stopped.txt', 'installer-vm-stopped.txt'], ids=['linux', 'macos'])
def test_a_stopped_microk8s_is_told_apart_with_its_own_sentence(name: str) -> None:
    status = parse_status(recorded(name))
    assert status.running is False and status.stopped is True
    assert status.message == recorded(name).strip()
    with pytest.raises(StatusError, match='microk8s start'):
        addons_to_enable(status, LAPTOP_ADDONS)


def test_the_stopped_sentence_is_recognised_through_terminal_colours() -> None:
    # The installer's Echo.warning() colours it when stdout is a terminal.
    status = parse_status('\x1b[1;33m' + recorded('installer-vm-stopped.txt').strip() + '\x1b[0m\n')
    assert status.stopped is True


def test_a_not_ready_microk8s_is_not_taken_for_a_stopped_one() -> None:
    assert parse_status(recorded('v1.20-not-running-pr2193.txt')).stopped is False


def test_output_that_is_not_the_status_is_refused_quoting_it() -> None:
    with pytest.raises(StatusError, match='no "microk8s: running:"\\): This MicroK8s deployment is acting as a node'):
        parse_status('This MicroK8s deployment is acting as a node in a cluster.\nPlease use the control plane node.\n')


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


def pod(namespace: str, labels: dict, ready: bool) -> dict:
    return {'metadata': {'namespace': namespace, 'labels': labels},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


INGRESS_LAYOUTS = [
    {'namespace': 'ingress', 'label_selectors': ['name=nginx-ingress-microk8s']},
    {'namespace': 'ingress', 'label_selectors': ['app.kubernetes.io/name=traefik']},
]
# Pod template labels of each layout: the nginx DaemonSet of addons/ingress/ingress.yaml
# (microk8s-core-addons 1.32), the Traefik chart the 1.35 enable script installs.
NGINX = {'name': 'nginx-ingress-microk8s'}
TRAEFIK = {'app.kubernetes.io/name': 'traefik', 'app.kubernetes.io/instance': 'traefik-ingress'}


@pytest.mark.parametrize('pods, ready', [
    ([pod('ingress', NGINX, True)], True),
    ([pod('ingress', TRAEFIK, True)], True),
    ([pod('ingress', TRAEFIK, False)], False),
    ([pod('ingress', TRAEFIK, True), pod('ingress', TRAEFIK, False)], False),
    ([], False),
    ([pod('other', TRAEFIK, True)], False),
    ([pod('ingress', {'app.kubernetes.io/name': 'other'}, True)], False),
], ids=['nginx-1.32', 'traefik-1.35', 'traefik-not-ready', 'one-of-two-not-ready', 'no-pods', 'other-namespace', 'other-app'])
def test_the_ingress_addon_is_ready_in_whichever_layout_the_cluster_runs(pods: list, ready: bool) -> None:
    assert addon_pods_ready(pods, INGRESS_LAYOUTS) is ready


def test_a_single_layout_mapping_is_one_layout() -> None:
    assert addon_pods_ready([pod('ingress', NGINX, True)], INGRESS_LAYOUTS[0]) is True
    assert addon_pods_ready([pod('ingress', TRAEFIK, True)], INGRESS_LAYOUTS[0]) is False


@pytest.mark.parametrize('selector, labels, matches', [
    ('a=b', {'a': 'b'}, True),
    ('a==b', {'a': 'c'}, False),
    ('a!=b', {}, True),
    ('a in (b, c)', {'a': 'c'}, True),
    ('a notin (b,c)', {'a': 'c'}, False),
    ('a', {'a': ''}, True),
    ('!a', {'a': 'x'}, False),
], ids=['equal', 'double-equal', 'not-equal-missing', 'in', 'notin', 'exists', 'not-exists'])
def test_label_selectors_match_as_the_api_server_reads_them(selector: str, labels: dict, matches: bool) -> None:
    assert label_selector_matches(selector, labels) is matches


@pytest.mark.parametrize('layouts', [[], {'label_selectors': []}, 'ingress'], ids=['empty', 'no-namespace', 'string'])
def test_an_addon_without_a_layout_is_refused(layouts: object) -> None:
    with pytest.raises(StatusError, match='namespace, label_selectors'):
        addon_pods_ready([], layouts)
