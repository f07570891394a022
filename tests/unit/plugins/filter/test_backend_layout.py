# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The names every role takes from the backend layout."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.backstage.k8s.plugins.filter.backend_layout import backend_layout

SPLIT = [
    {'name': 'gateway', 'plugins': ['gateway']},
    {'name': 'core', 'plugins': ['auth', 'catalog']},
    {'name': 'tech-docs', 'plugins': ['techdocs']},
]


def test_one_backend_keeps_the_names_of_a_single_deployment() -> None:
    assert backend_layout([], 'portal', 'backstage', 'least_privilege', 'client-tls') == [{
        'name': '', 'deployment': 'portal-backend', 'client_secret_name': 'client-tls',
        'database_user': 'backstage', 'plugins': []}]


def test_split_backends_share_the_superuser_but_not_the_certificate() -> None:
    layout = backend_layout(SPLIT, 'portal', 'postgres')
    assert [b['deployment'] for b in layout] == ['portal-backend-gateway', 'portal-backend-core',
                                                 'portal-backend-tech-docs']
    assert [b['client_secret_name'] for b in layout] == [
        'backstage-postgres-client-tls-gateway', 'backstage-postgres-client-tls-core',
        'backstage-postgres-client-tls-tech-docs']
    assert {b['database_user'] for b in layout} == {'postgres'}
    assert layout[1]['plugins'] == ['auth', 'catalog']


def test_least_privilege_gives_each_split_backend_its_own_role() -> None:
    users = [b['database_user'] for b in backend_layout(SPLIT, 'portal', 'backstage', 'least_privilege')]
    assert users == ['backstage_gateway', 'backstage_core', 'backstage_tech_docs']


@pytest.mark.parametrize('backends, mode', [
    ({'name': 'core'}, 'superuser'),
    ([{'plugins': ['catalog']}], 'superuser'),
    ([], 'owner'),
])
def test_refuses_what_is_not_a_layout(backends: object, mode: str) -> None:
    with pytest.raises(AnsibleFilterError):
        backend_layout(backends, 'portal', 'postgres', mode)
