# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Read ``microk8s status --format yaml`` and decide which addons to enable.

The output changed shape across microk8s versions (``scripts/wrappers/status.py`` of
canonical/microk8s):

- up to 1.18 the addons were grouped, ``addons: {enabled: [names], disabled: [names]}``;
- from 1.19 on ``addons:`` is a list of ``{name, description, version, status}`` (1.24 and later
  add ``repository``), next to a ``high-availability:`` section;
- the short ``--yaml`` form prints ``addons: {name: enabled|disabled}``, from 1.24 on with the
  repository in the key (``core/dns: enabled``);
- when microk8s is not running there is no ``addons:`` but ``running: False`` and a ``message:``,
  which the ``--format yaml`` printer indents under ``high-availability:``;
- a stopped microk8s (``microk8s stop``; on macOS a stopped VM) prints one sentence instead of
  YAML and exits 0: ``status --wait-ready`` returns at once.

``running`` is printed from a Python bool (``True``/``False``). Descriptions are printed
unquoted, so an addon description with ``: `` in it makes the output invalid YAML: when the YAML
does not load, the lines are read one by one instead.

Since 1.24 addons come from repositories (``core``, ``community``, any added with ``microk8s
addons repo add``), and two repositories may have an addon of the same name: each addon is kept
with its repository. The ``storage`` addon was renamed ``hostpath-storage`` (microk8s 1.24);
either name asks for the one the installed microk8s has.

Private to the collection: used by the ``microk8s`` filter plugins and the microk8s role.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None  # type: ignore[assignment]

# Names one addon has had over the versions: asking for any of them means the same addon.
ADDON_ALIASES = (
    ('hostpath-storage', 'storage'),
)
# The repository of microk8s's own addons; a bare name found in several repositories means this one.
CORE_REPOSITORY = 'core'
# What a stopped microk8s prints for every status command, instead of the status (exit code 0):
# common/utils.py exit_if_stopped() on Linux, the installer's run() on macOS when the VM is stopped.
STOPPED_SENTENCES = (
    'microk8s is not running, try microk8s start',
    'MicroK8s is not running. Please run `microk8s start`.',
)
_ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
_ADDON_LINE = re.compile(r'^\s*-\s*name:\s*(?P<name>\S+)\s*$')
_REPOSITORY_LINE = re.compile(r'^\s*repository:\s*(?P<repository>\S+)\s*$')
_STATUS_LINE = re.compile(r'^\s*status:\s*(?P<status>enabled|disabled)\s*$')
_RUNNING_LINE = re.compile(r'^\s*running:\s*(?P<running>\S+)\s*$')
_MESSAGE_LINE = re.compile(r'^\s*message:\s*(?P<message>.*?)\s*$')


class StatusError(Exception):
    """An output that is not microk8s's status; the message is meant for a person."""


class Addon(NamedTuple):
    name: str
    repository: Optional[str]  # None where microk8s (before 1.24) does not say
    status: str  # 'enabled' | 'disabled'

    @property
    def full_name(self) -> str:
        """The name ``microk8s enable`` takes without asking which repository."""
        return self.repository + '/' + self.name if self.repository else self.name


class Status(NamedTuple):
    running: bool
    stopped: bool  # stopped on purpose (microk8s stop, the VM stopped): microk8s start brings it back
    message: Optional[str]
    addons: Tuple[Addon, ...]

    def as_dict(self) -> Dict[str, Any]:
        return {
            'running': self.running,
            'stopped': self.stopped,
            'message': self.message,
            'addons': [a._asdict() for a in self.addons],
            'enabled': sorted(a.full_name for a in self.addons if a.status == 'enabled'),
            'disabled': sorted(a.full_name for a in self.addons if a.status == 'disabled'),
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


def _split_repository(key: str) -> Tuple[Optional[str], str]:
    repository, _slash, name = key.rpartition('/')
    return (repository or None), name


def _addons_from_yaml(addons: Any) -> Tuple[Addon, ...]:
    """The addons of any of the known shapes of ``addons:``."""
    result = []  # type: List[Addon]
    if addons is None:
        return ()
    if isinstance(addons, list):
        for item in addons:
            if not isinstance(item, dict) or 'name' not in item or 'status' not in item:
                raise StatusError('an addon entry without name and status: {0!r}'.format(item))
            name = str(item['name'])
            repository = str(item['repository']) if item.get('repository') else None
            result.append(Addon(name, repository, _normal_status(item['status'], name)))
    elif isinstance(addons, dict) and set(addons) <= {'enabled', 'disabled'} and all(
            isinstance(v, list) or v is None for v in addons.values()):
        for status in ('enabled', 'disabled'):
            for name in addons.get(status) or ():
                result.append(Addon(str(name), None, status))
    elif isinstance(addons, dict):
        for key, status in addons.items():
            repository, name = _split_repository(str(key))
            result.append(Addon(name, repository, _normal_status(status, key)))
    else:
        raise StatusError('addons: is neither a list nor a mapping: {0!r}'.format(addons))
    return tuple(result)


def _normal_status(status: Any, name: Any) -> str:
    text = str(status).strip().lower()
    if text not in ('enabled', 'disabled'):
        raise StatusError('addon {0} has the status {1!r}, not enabled or disabled'.format(name, status))
    return text


def _parse_lines(text: str) -> Status:
    """Read the list form line by line, for outputs whose descriptions break YAML."""
    running = None
    message = None
    addons = []  # type: List[Addon]
    name = None  # type: Optional[str]
    repository = None  # type: Optional[str]
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
            name, repository = match.group('name'), None
            continue
        match = _REPOSITORY_LINE.match(line)
        if match and name is not None:
            repository = match.group('repository')
            continue
        match = _STATUS_LINE.match(line)
        if match and name is not None:
            addons.append(Addon(name, repository, match.group('status')))
            name = None
    if running is None:
        raise _not_status(text)
    return Status(running, False, message, tuple(addons))


def _not_status(text: str) -> StatusError:
    """The error for an output that is not the status, quoting what microk8s said instead."""
    return StatusError('this is not the output of "microk8s status --format yaml" (no "microk8s: running:"): '
                       + text.strip()[:500])


def _message(document: Dict[str, Any]) -> Optional[str]:
    """microk8s's own words on why it is not running, wherever the printer put them."""
    for section in (document.get('microk8s'), document.get('high-availability'), document):
        if isinstance(section, dict) and section.get('message'):
            return str(section['message'])
    return None


def parse_status(text: str) -> Status:
    """The state ``microk8s status --format yaml`` (or ``--yaml``) reports."""
    if not isinstance(text, str) or not text.strip():
        raise StatusError('"microk8s status --format yaml" printed nothing')
    text = _ANSI_ESCAPE.sub('', text)
    for line in text.splitlines():
        if line.strip() in STOPPED_SENTENCES:
            return Status(False, True, line.strip(), ())
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
        raise _not_status(text)
    return Status(_as_bool(microk8s['running']), False, _message(document), _addons_from_yaml(document.get('addons')))


def _candidates(name: str) -> List[str]:
    for group in ADDON_ALIASES:
        if name in group:
            return [name] + [other for other in group if other != name]
    return [name]


def find_addon(status: Status, entry: str) -> Addon:
    """The addon ``entry`` (``name`` or ``repository/name``) means on this microk8s.

    A repository is matched where microk8s says which one each addon comes from (1.24 and
    later). A bare name found in several repositories means the core one; when none of them is
    core, the entry must name the repository, as ``microk8s enable`` itself requires.
    """
    repository, name = _split_repository(entry)
    for candidate in _candidates(name):
        found = [a for a in status.addons if a.name == candidate]
        if repository and any(a.repository for a in found):
            found = [a for a in found if a.repository == repository]
        if len(found) > 1:
            core = [a for a in found if a.repository == CORE_REPOSITORY]
            if not core:
                raise StatusError('the addon {0} is in several repositories ({1}): name one, for example {2}'.format(
                    entry, ', '.join(a.full_name for a in found), found[0].full_name))
            found = core
        if found:
            return found[0]
    raise StatusError('microk8s has no addon {0} (it has: {1})'.format(
        entry, ', '.join(sorted(a.full_name for a in status.addons)) or 'none'))


def addons_to_enable(status: Status, wanted: List[str]) -> List[str]:
    """The addons of ``wanted`` that are disabled, in the order given, as ``microk8s enable`` takes them.

    A name may carry a repository (``core/dns``). Asking for ``hostpath-storage`` on a microk8s
    that still calls it ``storage`` (or the other way round) enables the one it has. An addon
    microk8s does not list is an error that names the addons it has.
    """
    if not status.running:
        raise StatusError('microk8s is not running: {0}'.format(
            status.message or 'start it with "microk8s start" and wait with "microk8s status --wait-ready"'))
    result = []  # type: List[str]
    for entry in wanted:
        addon = find_addon(status, entry)
        if addon.status == 'disabled' and addon.full_name not in result:
            result.append(addon.full_name)
    return result


_SET_SELECTOR = re.compile(r'^\s*(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$')
_EQUALITY_SELECTOR = re.compile(r'^\s*(?P<key>[^\s!=]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,]*)\s*$')
_EXISTS_SELECTOR = re.compile(r'^\s*(?P<not>!?)\s*(?P<key>[^\s!=()]+)\s*$')


def label_selector_matches(selector: str, labels: Dict[str, str]) -> bool:
    """Whether labels match one Kubernetes label selector requirement (``k=v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``), as the API server reads it."""
    match = _SET_SELECTOR.fullmatch(selector)
    if match:
        values = {v.strip() for v in match.group('values').split(',')}
        inside = match.group('key') in labels and labels[match.group('key')] in values
        return inside if match.group('op') == 'in' else not inside
    match = _EQUALITY_SELECTOR.fullmatch(selector)
    if match:
        equal = labels.get(match.group('key')) == match.group('value')
        return equal if match.group('op') != '!=' else not equal
    match = _EXISTS_SELECTOR.fullmatch(selector)
    if match:
        return (match.group('key') in labels) != bool(match.group('not'))
    raise StatusError('not a label selector requirement: {0!r}'.format(selector))


def _pod_ready(pod: Dict[str, Any]) -> bool:
    conditions = (pod.get('status') or {}).get('conditions') or []
    return any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conditions)


def addon_layouts(layouts: Any) -> List[Dict[str, Any]]:
    """One addon's entry of microk8s_addon_pods as a list of layouts (a single mapping is one)."""
    items = [layouts] if isinstance(layouts, dict) else layouts
    if not isinstance(items, list) or not items or not all(
            isinstance(i, dict) and isinstance(i.get('namespace'), str) and isinstance(i.get('label_selectors', []), list)
            for i in items):
        raise StatusError('an addon\'s pods are a mapping {{namespace, label_selectors}} or a list of them, '
                          'not {0!r}'.format(layouts))
    return items


def addon_pods_ready(pods: List[Dict[str, Any]], layouts: Any) -> bool:
    """Whether an addon runs: the first of its layouts that has pods among ``pods`` has them all Ready.

    microk8s versions deploy some addons differently (ingress: nginx up to 1.34, Traefik from
    1.35), and a microk8s upgraded with an addon enabled keeps the older one: the pods in the
    cluster say which layout it runs.
    """
    for layout in addon_layouts(layouts):
        selected = [
            pod for pod in pods
            if (pod.get('metadata') or {}).get('namespace') == layout['namespace']
            and all(label_selector_matches(s, (pod.get('metadata') or {}).get('labels') or {})
                    for s in layout.get('label_selectors') or [])]
        if selected:
            return all(_pod_ready(pod) for pod in selected)
    return False


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
