# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Action plugin of backstage.k8s.k8s_apply: kubernetes.core.k8s's apply, skipped when it would change nothing.

The objects are read in the controller's process. When every one of them exists, applying it
would change nothing (kubernetes.core's own patch is empty) and, with wait, it is ready
(kubernetes.core's own condition for its kind), the task returns what the module would have
returned. Otherwise kubernetes.core.k8s runs with the same arguments, and does the work.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.backstage.k8s.plugins.plugin_utils._kubernetes import (
    AUTH_OPTIONS,
    api_client,
    module_args,
    runs_in_controller,
    unchanged_objects,
)

# The arguments whose meaning the check above covers; any other one goes to the module.
CHECKED_OPTIONS = frozenset(('state', 'apply', 'definition', 'wait', 'wait_sleep', 'wait_timeout')) | AUTH_OPTIONS


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used: nothing is copied to the managed node

        args = module_args(self, 'kubernetes.core.k8s')
        unchanged = self._unchanged(args) if runs_in_controller(self) else None
        if unchanged is None:
            result.update(self._execute_module('kubernetes.core.k8s', module_args=args, task_vars=task_vars))
            return result

        # The shape of kubernetes.core.k8s's return: one result, or a list of them.
        results = [dict(changed=False, method='apply', result=live) for live in unchanged]
        result.update(results[0] if len(results) == 1 else dict(changed=False, result=dict(results=results)))
        return result

    @staticmethod
    def _definitions(args):
        definition = args.get('definition')
        definitions = definition if isinstance(definition, list) else [definition]
        if not definitions or not all(isinstance(item, dict) for item in definitions):
            return None
        return definitions

    def _unchanged(self, args):
        """The live objects when the apply would change nothing and all are ready; else None."""
        if (not set(args) <= CHECKED_OPTIONS or args.get('state', 'present') != 'present'
                or not boolean(args.get('apply', False))):
            return None
        definitions = self._definitions(args)
        if definitions is None:
            return None
        return unchanged_objects(api_client(args), definitions, boolean(args.get('wait', False)))
