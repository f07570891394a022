# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Filters that decide whether PostgreSQL or the backend must load the certificate in its Secret,
and record the certificate it loaded. One decision for the postgres and backstage roles on deploy
and for the rotation job; they run in the controller's process (no module run)."""

from __future__ import annotations

from typing import Any, Dict

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._certificate_record import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    RecordError,
    annotation,
    is_behind,
    record_patch,
)


def _need_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError('the Python library cryptography is needed: {0}'.format(CRYPTOGRAPHY_IMPORT_ERROR))


def certificate_behind(running: Any, certificate: str, component: str = '') -> bool:
    _need_cryptography()
    try:
        return is_behind(running, to_native(certificate), to_native(component))
    except RecordError as exc:
        raise AnsibleFilterError(to_native(exc))


def certificate_record(certificate: str, component: str) -> Dict[str, Any]:
    _need_cryptography()
    try:
        return record_patch(to_native(certificate), to_native(component))
    except RecordError as exc:
        raise AnsibleFilterError(to_native(exc))


def certificate_record_annotation(component: str) -> str:
    try:
        return annotation(to_native(component))
    except RecordError as exc:
        raise AnsibleFilterError(to_native(exc))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {
            'certificate_behind': certificate_behind,
            'certificate_record': certificate_record,
            'certificate_record_annotation': certificate_record_annotation,
        }
