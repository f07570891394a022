# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Tests the roles check their names with: Kubernetes object names, label selectors and PostgreSQL user names.

Each pattern must match the whole value (``fullmatch``): with ``re.match`` and a pattern ending in
``$``, ``"backstage\\n"`` would pass, since ``$`` also matches before a trailing newline.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping

# k8s.io/apimachinery/pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain.
_DNS1123_LABEL = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')
_DNS1123_LABEL_MAX = 63
_DNS1123_SUBDOMAIN = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
_DNS1123_SUBDOMAIN_MAX = 253
# IsQualifiedName (a label's key: an optional DNS-1123 subdomain and '/', then a name) and
# IsValidLabelValue (empty, or a name).
_LABEL_NAME = re.compile(r'[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?')
_LABEL_NAME_MAX = 63
# A user name PostgreSQL's cert authentication can match to a certificate's CN without quoting
# surprises: a letter or '_' first, then letters, digits, '_', '$' or '-'; NAMEDATALEN - 1 bytes.
_POSTGRES_USER_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_$-]*')
_POSTGRES_USER_NAME_MAX = 63
# Kubernetes' own namespaces: an application's objects, and its Secrets above all, do not go there.
_SYSTEM_NAMESPACES = frozenset(('kube-system', 'kube-public', 'kube-node-lease'))


def _whole(pattern: re.Pattern[str], longest: int, value: Any) -> bool:
    return isinstance(value, str) and len(value) <= longest and pattern.fullmatch(value) is not None


def dns1123_label(value: Any) -> bool:
    """A DNS-1123 label: the name of a Namespace, a Service, a CronJob."""
    return _whole(_DNS1123_LABEL, _DNS1123_LABEL_MAX, value)


def dns1123_subdomain(value: Any) -> bool:
    """A DNS-1123 subdomain: the name of a Secret, a ConfigMap, most objects."""
    return _whole(_DNS1123_SUBDOMAIN, _DNS1123_SUBDOMAIN_MAX, value)


def app_namespace(value: Any) -> bool:
    """A namespace name (a DNS-1123 label) that is not one of Kubernetes' system namespaces."""
    return dns1123_label(value) and value not in _SYSTEM_NAMESPACES


def _label_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition('/')
    return (not slash or dns1123_subdomain(prefix)) and _whole(_LABEL_NAME, _LABEL_NAME_MAX, name)


def _label_value(value: Any) -> bool:
    return value == '' or _whole(_LABEL_NAME, _LABEL_NAME_MAX, value)


def label_selector(value: Any) -> bool:
    """A mapping of at least one label key to its value, as the objects a role acts on are selected.

    Empty is refused: an empty selector selects every object of its kind in the namespace.
    """
    return (isinstance(value, Mapping) and len(value) > 0
            and all(_label_key(key) and _label_value(label) for key, label in value.items()))


def postgres_user_name(value: Any) -> bool:
    """A PostgreSQL user name usable as the CN of a client certificate."""
    return _whole(_POSTGRES_USER_NAME, _POSTGRES_USER_NAME_MAX, value)


class TestModule:
    def tests(self) -> Dict[str, Callable[[Any], bool]]:
        return {
            'app_namespace': app_namespace,
            'dns1123_label': dns1123_label,
            'dns1123_subdomain': dns1123_subdomain,
            'label_selector': label_selector,
            'postgres_user_name': postgres_user_name,
        }
