# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Action plugin of backstage.k8s.k8s_get: kubernetes.core.k8s_info's read, in the controller's process.

Where the task cannot run here (a connection other than local, or no Kubernetes client on the
controller), kubernetes.core.k8s_info runs instead, with the same arguments.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.backstage.k8s.plugins.plugin_utils._kubernetes import (
    AUTH_ARG_SPEC,
    api_client,
    module_args,
    read,
    runs_in_controller,
)

K8S_GET_ARGUMENT_SPEC = dict(
    AUTH_ARG_SPEC,
    api_version=dict(type='str', default='v1', aliases=['api', 'version']),
    kind=dict(type='str', required=True),
    name=dict(type='str'),
    namespace=dict(type='str'),
    label_selectors=dict(type='list', elements='str', default=[]),
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used: nothing is copied to the managed node

        args = module_args(self, 'kubernetes.core.k8s_info')
        if not runs_in_controller(self):
            result.update(self._execute_module('kubernetes.core.k8s_info', module_args=args, task_vars=task_vars))
            return result

        self._task.args = args
        dummy, params = self.validate_argument_spec(argument_spec=K8S_GET_ARGUMENT_SPEC)
        client = api_client(params)
        resources = read(client, params['api_version'], params['kind'], params['name'],
                         params['namespace'], params['label_selectors'])
        result.update(changed=False, api_found=resources is not None, resources=resources or [])
        return result
