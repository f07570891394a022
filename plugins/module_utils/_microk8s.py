# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Read ``microk8s status --format yaml`` and decide which addons to enable.

The output changed shape across microk8s versions:

- up to 1.18 the addons were grouped, ``addons: {enabled: [names], disabled: [names]}``;
- ``--yaml`` (short) printed ``addons: {name: enabled|disabled}``;
- from 1.19 on ``addons:`` is a list of ``{name, description, version, status}`` (1.24 and later
  add ``repository``), next to a ``high-availability:`` section;
- when microk8s is not running there is no ``addons:`` but ``running: False`` and a ``message:``.

``running`` is printed from a Python bool (``True``/``False``). Descriptions are printed
unquoted, so an addon description with ``: `` in it makes the output invalid YAML: when the YAML
does not load, the lines are read one by one instead.

The ``storage`` addon was renamed ``hostpath-storage`` (microk8s 1.24); either name asks for the
one the installed microk8s has.

Private to the collection: used by the ``microk8s`` filter plugins and the microk8s role.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, NamedTuple, Optional

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None  # type: ignore[assignment]

# Names one addon has had over the versions: asking for any of them means the same addon.
ADDON_ALIASES = (
    ('hostpath-storage', 'storage'),
)
_ADDON_LINE = re.compile(r'^\s*-\s*name:\s*(?P<name>\S+)\s*$')
_STATUS_LINE = re.compile(r'^\s*status:\s*(?P<status>enabled|disabled)\s*$')
_RUNNING_LINE = re.compile(r'^\s*running:\s*(?P<running>\S+)\s*$')
_MESSAGE_LINE = re.compile(r'^\s*message:\s*(?P<message>.*?)\s*$')


class StatusError(Exception):
    """An output that is not microk8s's status; the message is meant for a person."""


class Status(NamedTuple):
    running: bool
    message: Optional[str]
    addons: Dict[str, str]  # name -> 'enabled' | 'disabled', repository prefix removed
    repositories: Dict[str, str]  # name -> repository, for the addons that say

    def as_dict(self) -> Dict[str, Any]:
        return {
            'running': self.running,
            'message': self.message,
            'addons': dict(self.addons),
            'enabled': sorted(n for n, s in self.addons.items() if s == 'enabled'),
            'disabled': sorted(n for n, s in self.addons.items() if s == 'disabled'),
            'repositories': dict(self.repositories),
        }


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', 'yes'):
        return True
    if text in ('false', 'no'):
        return False
    raise StatusError('microk8s: running: is neither true nor false: {0!r}'.format(value))


def _addons_from_yaml(addons: Any) -> Dict[str, Any]:
    """(name -> status, name -> repository) from any of the known shapes of ``addons:``."""
    result = {}  # type: Dict[str, str]
    repositories = {}  # type: Dict[str, str]
    if addons is None:
        return {'addons': result, 'repositories': repositories}
    if isinstance(addons, list):
        for item in addons:
            if not isinstance(item, dict) or 'name' not in item or 'status' not in item:
                raise StatusError('an addon entry without name and status: {0!r}'.format(item))
            name = str(item['name'])
            if item.get('repository'):
                repositories[name] = str(item['repository'])
            result[name] = _normal_status(item['status'], name)
    elif isinstance(addons, dict) and set(addons) <= {'enabled', 'disabled'} and all(
            isinstance(v, list) or v is None for v in addons.values()):
        for status in ('enabled', 'disabled'):
            for name in addons.get(status) or ():
                result[str(name)] = status
    elif isinstance(addons, dict):
        for name, status in addons.items():
            result[str(name)] = _normal_status(status, name)
    else:
        raise StatusError('addons: is neither a list nor a mapping: {0!r}'.format(addons))
    return {'addons': result, 'repositories': repositories}


def _normal_status(status: Any, name: Any) -> str:
    text = str(status).strip().lower()
    if text not in ('enabled', 'disabled'):
        raise StatusError('addon {0} has the status {1!r}, not enabled or disabled'.format(name, status))
    return text


def _parse_lines(text: str) -> Status:
    """Read the list form line by line, for outputs whose descriptions break YAML."""
    running = None
    message = None
    addons = {}  # type: Dict[str, str]
    current = None
    for line in text.splitlines():
        match = _RUNNING_LINE.match(line)
        if match and running is None:
            running = _as_bool(match.group('running'))
            continue
        match = _MESSAGE_LINE.match(line)
        if match and message is None and not addons:
            message = match.group('message')
            continue
        match = _ADDON_LINE.match(line)
        if match:
            current = match.group('name')
            continue
        match = _STATUS_LINE.match(line)
        if match and current is not None:
            addons[current] = match.group('status')
            current = None
    if running is None:
        raise StatusError('this is not the output of "microk8s status --format yaml" (no "running:")')
    return Status(running, message, addons, {})


def parse_status(text: str) -> Status:
    """The state ``microk8s status --format yaml`` (or ``--yaml``) reports."""
    if not isinstance(text, str) or not text.strip():
        raise StatusError('"microk8s status --format yaml" printed nothing')
    document = None
    if yaml is not None:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            document = None
    if not isinstance(document, dict):
        return _parse_lines(text)
    microk8s = document.get('microk8s')
    if not isinstance(microk8s, dict) or 'running' not in microk8s:
        raise StatusError('this is not the output of "microk8s status --format yaml" (no "microk8s: running:")')
    parsed = _addons_from_yaml(document.get('addons'))
    return Status(_as_bool(microk8s['running']), microk8s.get('message'), parsed['addons'], parsed['repositories'])


def _candidates(name: str) -> List[str]:
    for group in ADDON_ALIASES:
        if name in group:
            return [name] + [other for other in group if other != name]
    return [name]


def addons_to_enable(status: Status, wanted: List[str]) -> List[str]:
    """The addons of ``wanted`` that are disabled, in the order given, by the names microk8s knows.

    A name may carry a repository (``core/dns``). Asking for ``hostpath-storage`` on a microk8s
    that still calls it ``storage`` (or the other way round) enables the one it has. An addon
    microk8s does not list is an error that names the addons it has.
    """
    if not status.running:
        raise StatusError('microk8s is not running: {0}'.format(
            status.message or 'start it with "microk8s start" and wait with "microk8s status --wait-ready"'))
    result = []  # type: List[str]
    for entry in wanted:
        repository, name = entry.rpartition('/')[::2]
        found = next((c for c in _candidates(name) if c in status.addons), None)
        if found is None:
            raise StatusError('microk8s has no addon {0} (it has: {1})'.format(
                entry, ', '.join(sorted(status.addons)) or 'none'))
        if status.addons[found] == 'disabled':
            prefix = repository + '/' if repository else ''
            if prefix + found not in result:
                result.append(prefix + found)
    return result


def merge_kubeconfig(existing: Optional[Dict[str, Any]], new: Dict[str, Any], name: str) -> Dict[str, Any]:
    """``existing`` with the one cluster, user and context of ``new`` added under ``name``.

    Entries of ``existing`` with the same name are replaced; every other entry and the
    current-context stay as they are (the current context is set only when there is none).
    """
    try:
        cluster = new['clusters'][0]['cluster']
        user = new['users'][0]['user']
        namespace = new['contexts'][0]['context'].get('namespace')
    except (KeyError, IndexError, TypeError, AttributeError):
        raise StatusError('the kubeconfig microk8s printed has no cluster, user and context')
    merged = copy.deepcopy(existing) if existing else {}
    merged.setdefault('apiVersion', 'v1')
    merged.setdefault('kind', 'Config')
    merged.setdefault('preferences', {})
    context = {'cluster': name, 'user': name}
    if namespace:
        context['namespace'] = namespace
    for key, entry in (('clusters', {'name': name, 'cluster': cluster}),
                       ('users', {'name': name, 'user': user}),
                       ('contexts', {'name': name, 'context': context})):
        entries = [e for e in (merged.get(key) or []) if not (isinstance(e, dict) and e.get('name') == name)]
        entries.append(entry)
        merged[key] = entries
    if not merged.get('current-context'):
        merged['current-context'] = name
    return merged
