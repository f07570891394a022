# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Kubernetes reads and no-op checks in the controller's process, for the k8s_get and k8s_apply actions.

A kubernetes.core module run is a new Python process that imports the Kubernetes client before
its first API call (0.5-1 s). The action plugins that use this file import the client here, at
module level: ansible-core's linear strategy loads an action plugin's class in its own process
before it forks the worker for the task, so the client is imported once per playbook run and
every later task inherits it. The API client, the apply patch and the readiness checks are
kubernetes.core's own (its module_utils), so a decision taken here is the one its modules take.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleActionFail

# What ansible-core's own gather_facts, package and service actions use to give the modules they run
# the play's module_defaults.
from ansible.executor.module_common import _apply_action_arg_defaults

try:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
    from ansible_collections.kubernetes.core.plugins.module_utils.apply import apply_patch
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import diff_objects
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import RESOURCE_PREDICATES
except ImportError:  # the kubernetes client or kubernetes.core is missing: the modules run and say so
    HAS_KUBERNETES = False
    AUTH_ARG_SPEC = {}
else:
    HAS_KUBERNETES = True

LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration'

AUTH_OPTIONS = frozenset(AUTH_ARG_SPEC) | frozenset(
    alias for spec in AUTH_ARG_SPEC.values() for alias in spec.get('aliases', ()))


def module_args(action, module_name):
    """The task's arguments with the play's module_defaults for module_name, as the module would get them."""
    return _apply_action_arg_defaults(module_name, action._task, dict(action._task.args), action._templar)


def runs_in_controller(action):
    """Whether the task can be carried out in this process: a local connection and the libraries here."""
    return HAS_KUBERNETES and action._connection.transport == 'local'


def api_client(args):
    """kubernetes.core's API client for the authentication options in args (kubeconfig, context, ...)."""
    try:
        return get_api_client(**{option: value for option, value in args.items() if option in AUTH_OPTIONS})
    except CoreException as error:
        raise AnsibleActionFail(str(error)) from error


def concurrently(client, function, items):
    """function(item) for each of items, in order, all at once: a thread each (a role applies a dozen
    objects or so), up to the connections the client keeps (its urllib3 pool: 5 per CPU), so that
    none waits for another's turn."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(client.configuration.connection_pool_maxsize or 1, len(items))) as pool:
        return list(pool.map(function, items))


def read_all(client, reads):
    """The objects k8s_info would return for each of reads, in the same order, read all at once.

    A read is a dict of api_version, kind and either a name or label_selectors (and a namespace for
    a namespaced kind); its objects are a list of dicts, one by name or all matching the labels.
    None when the API server does not serve the kind (k8s_info's api_found false). The kinds are
    looked up one after the other (the discovery cache is shared); the reads then wait on the API
    server together.
    """
    resources = []
    for item in reads:
        try:
            resources.append(client.resource(item['kind'], item['api_version']))
        except ResourceNotFoundError:
            resources.append(None)
    return concurrently(client, lambda pair: _read(client, *pair), list(zip(resources, reads)))


def _read(client, resource, item):
    if resource is None:
        return None
    try:
        found = client.get(resource, name=item.get('name'), namespace=item.get('namespace'),
                           label_selector=','.join(item.get('label_selectors') or []) or None)
    except NotFoundError:
        return []
    if item.get('name'):
        return [found.to_dict()]
    return [obj.to_dict() for obj in found.items]


def keep_secret_keys(secret, keys):
    """The Secret with only those keys of its data, all of them when keys is None.

    The annotation kubectl.kubernetes.io/last-applied-configuration goes too: an applied Secret's
    holds all of its data again. A task that needs only a Secret's certificates then holds no key.
    """
    if keys is None:
        return secret
    kept = dict(secret)
    for field in ('data', 'stringData'):
        if field in kept:
            kept[field] = {key: value for key, value in (kept[field] or {}).items() if key in keys}
    metadata = kept.get('metadata') or {}
    if LAST_APPLIED_ANNOTATION in (metadata.get('annotations') or {}):
        annotations = dict(metadata['annotations'])
        del annotations[LAST_APPLIED_ANNOTATION]
        kept['metadata'] = dict(metadata, annotations=annotations)
    return kept


def unchanged_objects(client, definitions, wait):
    """The live objects when applying every definition would change nothing and, with wait, all are ready; else None.

    The kinds are looked up one after the other (the discovery cache is shared); the objects are
    read and dry-run at the same time, each request waiting on the API server, not on this process.
    """
    resources = []
    for definition in definitions:
        if not (definition.get('apiVersion') and definition.get('kind')):
            return None
        resources.append(client.resource(definition['kind'], definition['apiVersion']))
    live = concurrently(client, lambda pair: applied_and_ready(client, pair[0], pair[1], wait),
                        list(zip(resources, definitions)))
    return None if any(item is None for item in live) else live


def applied_and_ready(client, resource, definition, wait):
    """The live object when applying definition would change nothing and, with wait, it is ready; else None.

    The patch is kubernetes.core's own three-way merge of the last applied configuration, the
    definition and the live object. A patch that is not empty (lists such as a pod's containers
    are always sent whole) is sent as the module sends it, but as a server-side dry run, and its
    outcome compared with the live object by kubernetes.core's own comparison: the module's
    decision, without the write. The readiness is kubernetes.core's wait condition for the kind.
    """
    metadata = definition.get('metadata') or {}
    if not metadata.get('name'):
        return None
    if resource.namespaced and not metadata.get('namespace'):
        return None
    try:
        live = client.get(resource, name=metadata['name'], namespace=metadata.get('namespace'))
    except NotFoundError:
        return None
    actual = live.to_dict()
    before, patched = apply_patch(actual, definition)
    if patched is not before:
        outcome = client.patch(resource, patched, name=metadata['name'], namespace=metadata.get('namespace'),
                               content_type='application/merge-patch+json', dry_run='All')
        unchanged, dummy = diff_objects(actual, outcome.to_dict())
        if not unchanged:
            return None
    if wait and not RESOURCE_PREDICATES.get(definition['kind'], bool)(live):
        return None
    return actual
