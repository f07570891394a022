# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The backend layout: which Deployment, client certificate Secret and database user each Backstage
backend has. One source for the backstage, pki, postgres and cert_rotation roles and the preflight,
which must all agree on these names."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native


def backend_layout(backends: Any, instance: str, database_user: str, database_mode: str = 'superuser',
                   client_secret_name: str = 'backstage-postgres-client-tls') -> List[Dict[str, Any]]:
    if not isinstance(backends, list):
        raise AnsibleFilterError('backend_layout expects a list of backends, got {0}'.format(type(backends).__name__))
    if database_mode not in ('superuser', 'least_privilege'):
        raise AnsibleFilterError('backend_layout: unknown database mode {0!r}'.format(database_mode))
    instance = to_native(instance)
    database_user = to_native(database_user)
    client_secret_name = to_native(client_secret_name)
    if not backends:
        return [{
            'name': '',
            'deployment': instance + '-backend',
            'client_secret_name': client_secret_name,
            'database_user': database_user,
            'plugins': [],
        }]
    layout = []
    for entry in backends:
        if not isinstance(entry, dict) or not entry.get('name'):
            raise AnsibleFilterError('backend_layout: every backend needs a name, got {0!r}'.format(entry))
        name = to_native(entry['name'])
        layout.append({
            'name': name,
            'deployment': '{0}-backend-{1}'.format(instance, name),
            'client_secret_name': '{0}-{1}'.format(client_secret_name, name),
            # A DNS label's hyphens would need quoting in SQL; the names are DNS labels, so no two
            # backends map to the same role.
            'database_user': (database_user if database_mode == 'superuser'
                              else '{0}_{1}'.format(database_user, name.replace('-', '_'))),
            'plugins': [to_native(plugin) for plugin in entry.get('plugins') or []],
        })
    return layout


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {'backend_layout': backend_layout}
