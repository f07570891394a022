# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Filters that read microk8s's status and kubeconfig for the microk8s role."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._microk8s import (
    StatusError,
    addon_pods_ready,
    addons_to_enable,
    merge_kubeconfig,
    parse_status,
)


def microk8s_status(text: str) -> Dict[str, Any]:
    try:
        return parse_status(text).as_dict()
    except StatusError as exc:
        raise AnsibleFilterError(to_native(exc))


def microk8s_addons_to_enable(text: str, wanted: List[str]) -> List[str]:
    try:
        return addons_to_enable(parse_status(text), list(wanted))
    except StatusError as exc:
        raise AnsibleFilterError(to_native(exc))


def microk8s_addon_pods_ready(pods: List[Dict[str, Any]], layouts: Any) -> bool:
    try:
        return addon_pods_ready(list(pods), layouts)
    except StatusError as exc:
        raise AnsibleFilterError(to_native(exc))


def microk8s_merge_kubeconfig(existing: Optional[Dict[str, Any]], new: Dict[str, Any], name: str) -> Dict[str, Any]:
    try:
        return merge_kubeconfig(existing, new, name)
    except StatusError as exc:
        raise AnsibleFilterError(to_native(exc))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {
            'microk8s_status': microk8s_status,
            'microk8s_addons_to_enable': microk8s_addons_to_enable,
            'microk8s_merge_kubeconfig': microk8s_merge_kubeconfig,
            'microk8s_addon_pods_ready': microk8s_addon_pods_ready,
        }
