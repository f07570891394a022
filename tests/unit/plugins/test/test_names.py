# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The name tests the roles validate their variables with accept whole names only."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from ansible_collections.backstage.k8s.plugins.test import names
from ansible_collections.backstage.k8s.plugins.test.names import (
    app_namespace,
    dns1123_label,
    dns1123_subdomain,
    label_selector,
    postgres_user_name,
)

# Refused by every test: surrounding whitespace is never part of a name.
NOT_WHOLE = [
    pytest.param('backstage\n', id='trailing-newline'),
    pytest.param('backstage\r\n', id='trailing-crlf'),
    pytest.param(' backstage', id='leading-space'),
    pytest.param('backstage ', id='trailing-space'),
    pytest.param('\nbackstage', id='leading-newline'),
    pytest.param('back\nstage', id='inner-newline'),
    pytest.param('', id='empty'),
    pytest.param(None, id='none'),
    pytest.param(7, id='int'),
    pytest.param(['backstage'], id='list'),
]
ALL_TESTS = [pytest.param(t, id=t.__name__)
             for t in (app_namespace, dns1123_label, dns1123_subdomain, postgres_user_name)]


@pytest.mark.parametrize('test', ALL_TESTS)
@pytest.mark.parametrize('value', NOT_WHOLE)
def test_a_value_that_is_not_a_whole_name_is_refused(test: Callable[[Any], bool], value: Any) -> None:
    assert test(value) is False


@pytest.mark.parametrize('value', ['backstage', 'a', '0', 'bk8s-molecule-postgres', 'a' * 63, '1-2'])
def test_dns1123_labels_are_accepted(value: str) -> None:
    assert dns1123_label(value) is True


@pytest.mark.parametrize('value', [
    pytest.param('Backstage', id='upper-case'),
    pytest.param('backstage_ns', id='underscore'),
    pytest.param('pg.main', id='dot'),
    pytest.param('-backstage', id='leading-dash'),
    pytest.param('backstage-', id='trailing-dash'),
    pytest.param('a' * 64, id='64-characters'),
    pytest.param('bäckstage', id='non-ascii'),
    pytest.param('１２', id='non-ascii-digits'),
])
def test_what_is_not_a_dns1123_label_is_refused(value: str) -> None:
    assert dns1123_label(value) is False


@pytest.mark.parametrize('value', ['postgres-server-tls', 'a', 'tls.backstage.example', 'a' * 253,
                                   '.'.join(['a' * 63] * 3) + '.' + 'b' * 61])
def test_dns1123_subdomains_are_accepted(value: str) -> None:
    assert dns1123_subdomain(value) is True


@pytest.mark.parametrize('value', [
    pytest.param('TLS', id='upper-case'),
    pytest.param('su_pw', id='underscore'),
    pytest.param('-client', id='leading-dash'),
    pytest.param('client.', id='trailing-dot'),
    pytest.param('a..b', id='empty-label'),
    pytest.param('a.-b', id='label-starting-with-dash'),
    pytest.param('a-.b', id='label-ending-with-dash'),
    pytest.param('a' * 254, id='254-characters'),
])
def test_what_is_not_a_dns1123_subdomain_is_refused(value: str) -> None:
    assert dns1123_subdomain(value) is False


@pytest.mark.parametrize('value', ['postgres', '_svc', 'Backstage_1', 'app$user', 'app-user', 'a' * 63])
def test_postgres_user_names_are_accepted(value: str) -> None:
    assert postgres_user_name(value) is True


@pytest.mark.parametrize('value', [
    pytest.param('1user', id='starts-with-digit'),
    pytest.param('-user', id='starts-with-dash'),
    pytest.param('app user', id='inner-space'),
    pytest.param('app"user', id='quote'),
    pytest.param('a' * 64, id='64-characters'),
])
def test_what_is_not_a_postgres_user_name_is_refused(value: str) -> None:
    assert postgres_user_name(value) is False


def test_ansible_finds_each_test_by_its_documented_name() -> None:
    assert set(names.TestModule().tests()) == {'app_namespace', 'dns1123_label', 'dns1123_subdomain',
                                               'label_selector', 'postgres_user_name'}


@pytest.mark.parametrize('value', ['backstage', 'kube-systems', 'my-kube-system', 'default'])
def test_application_namespaces_are_accepted(value: str) -> None:
    assert app_namespace(value) is True


@pytest.mark.parametrize('value', ['kube-system', 'kube-public', 'kube-node-lease', 'Backstage', 'a' * 64])
def test_system_namespaces_and_what_is_not_a_label_are_refused(value: str) -> None:
    assert app_namespace(value) is False


@pytest.mark.parametrize('value', [
    {'app.kubernetes.io/component': 'backend'},
    {'app.kubernetes.io/name': 'backstage', 'app.kubernetes.io/instance': 'my-Backstage_1.0',
     'app.kubernetes.io/component': 'backend'},
    {'tier': ''},
    {'a' * 63: 'b' * 63},
])
def test_label_selectors_are_accepted(value: dict[str, str]) -> None:
    assert label_selector(value) is True


@pytest.mark.parametrize('value', [
    pytest.param({}, id='empty'),
    pytest.param('app.kubernetes.io/component=backend', id='string'),
    pytest.param(['app.kubernetes.io/component=backend'], id='list'),
    pytest.param(None, id='none'),
    pytest.param({'app.kubernetes.io/component': 'back end'}, id='value-with-space'),
    pytest.param({'app.kubernetes.io/component': 'backend\n'}, id='value-with-newline'),
    pytest.param({'app.kubernetes.io/component': '-backend'}, id='value-starting-with-dash'),
    pytest.param({'tier': 'b' * 64}, id='64-character-value'),
    pytest.param({'tier': 1}, id='int-value'),
    pytest.param({'App.Kubernetes.io/component': 'backend'}, id='upper-case-prefix'),
    pytest.param({'/component': 'backend'}, id='empty-prefix'),
    pytest.param({'app.kubernetes.io/': 'backend'}, id='empty-name'),
    pytest.param({'a/b/c': 'backend'}, id='two-slashes'),
    pytest.param({'a' * 64: 'backend'}, id='64-character-name'),
    pytest.param({'': 'backend'}, id='empty-key'),
])
def test_what_is_not_a_label_selector_is_refused(value: Any) -> None:
    assert label_selector(value) is False
