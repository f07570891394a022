# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Action plugin of backstage.k8s.k8s_get: kubernetes.core.k8s_info's read, in the controller's process.

Where the task cannot run here (a connection other than local, or no Kubernetes client on the
controller), kubernetes.core.k8s_info runs instead, once per read, with the same arguments.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.backstage.k8s.plugins.plugin_utils._kubernetes import (
    AUTH_ARG_SPEC,
    api_client,
    keep_secret_keys,
    module_args,
    read_all,
    runs_in_controller,
)

# One read; in `objects` each read names its kind, at the top level `objects` may take its place.
READ_ARGUMENT_SPEC = dict(
    api_version=dict(type='str', default='v1', aliases=['api', 'version']),
    kind=dict(type='str', required=True),
    name=dict(type='str'),
    namespace=dict(type='str'),
    label_selectors=dict(type='list', elements='str', default=[]),
)
READ_OPTIONS = tuple(READ_ARGUMENT_SPEC)
K8S_GET_ARGUMENT_SPEC = {
    **AUTH_ARG_SPEC,
    **READ_ARGUMENT_SPEC,
    'kind': dict(type='str'),
    'objects': dict(type='list', elements='dict', options=READ_ARGUMENT_SPEC),
    'secret_keys': dict(type='list', elements='str', no_log=False),
}
K8S_GET_MUTUALLY_EXCLUSIVE = [('objects', 'kind'), ('objects', 'name'), ('objects', 'label_selectors')]
K8S_GET_REQUIRED_ONE_OF = [('kind', 'objects')]


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used: nothing is copied to the managed node

        args = module_args(self, 'kubernetes.core.k8s_info')
        self._task.args = args
        dummy, params = self.validate_argument_spec(argument_spec=K8S_GET_ARGUMENT_SPEC,
                                                    mutually_exclusive=K8S_GET_MUTUALLY_EXCLUSIVE,
                                                    required_one_of=K8S_GET_REQUIRED_ONE_OF)
        if params['objects'] is None:
            reads = [{option: params[option] for option in READ_OPTIONS}]
        else:
            # Each read as given (a loop's result holds its item the same way), in the task's
            # namespace unless it names one.
            reads = [dict(obj, namespace=obj['namespace'] or params['namespace']) for obj in params['objects']]

        if runs_in_controller(self):
            found = read_all(api_client(params), reads)
        else:
            auth = {option: params[option] for option in AUTH_ARG_SPEC if params.get(option) is not None}
            found = []
            for read in reads:
                outcome = self._execute_module(
                    'kubernetes.core.k8s_info', task_vars=task_vars,
                    module_args=dict(auth, **{option: value for option, value in read.items() if value}))
                if outcome.get('failed'):
                    result.update(outcome)
                    return result
                found.append(outcome.get('resources', []) if outcome.get('api_found', True) else None)
        # Listed objects carry no kind of their own: the read's says which are Secrets.
        found = [[keep_secret_keys(obj, params['secret_keys']) for obj in resources]
                 if resources and read['kind'] == 'Secret' and read['api_version'] == 'v1' else resources
                 for read, resources in zip(reads, found)]

        results = [dict(item=read, api_found=resources is not None, resources=resources or [])
                   for read, resources in zip(reads, found)]
        if params['objects'] is None:
            result.update(changed=False, api_found=results[0]['api_found'], resources=results[0]['resources'])
        else:
            result.update(changed=False, results=results)
        return result
