# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Action plugin of backstage.k8s.cert_cn_check.

Certificates given as content are checked in the controller's process: the check is a pure
function of its arguments, so a module run would only add a Python start and imports. A
certificate named by a path is a file on the managed node, so the module runs there.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    CN_CHECK_ARGUMENT_SPEC,
    CN_CHECK_MUTUALLY_EXCLUSIVE,
    CN_CHECK_PATH_OPTIONS,
    CN_CHECK_REQUIRED_ONE_OF,
    HAS_CRYPTOGRAPHY,
    cn_check,
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used: nothing is copied to the managed node

        if any(self._task.args.get(option) is not None for option in CN_CHECK_PATH_OPTIONS):
            result.update(self._execute_module(task_vars=task_vars))
            return result

        dummy, params = self.validate_argument_spec(
            argument_spec=CN_CHECK_ARGUMENT_SPEC,
            mutually_exclusive=CN_CHECK_MUTUALLY_EXCLUSIVE,
            required_one_of=CN_CHECK_REQUIRED_ONE_OF,
        )
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleActionFail('cert_cn_check needs the Python library cryptography on the controller '
                                    'to check certificates given as content')
        result.update(cn_check(params))
        return result
