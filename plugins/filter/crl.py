# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Filters that sign and read the CA's certificate revocation list for the pki role.

They run in the controller's process: the CA key they sign with is never a module argument."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._crl import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    CrlError,
    read,
    sign,
)


def _need_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError('the Python library cryptography is needed: {0}'.format(CRYPTOGRAPHY_IMPORT_ERROR))


def x509_crl_sign(ca_certificate: str, ca_private_key: str, revoked: List[Any], next_update: str) -> str:
    _need_cryptography()
    try:
        return sign(to_native(ca_certificate), to_native(ca_private_key), list(revoked), to_native(next_update))
    except CrlError as exc:
        raise AnsibleFilterError(to_native(exc))


def x509_crl_read(crl: str, ca_certificate: str) -> Dict[str, Any]:
    _need_cryptography()
    try:
        return read(to_native(crl or ''), to_native(ca_certificate))
    except CrlError as exc:
        raise AnsibleFilterError(to_native(exc))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {
            'x509_crl_sign': x509_crl_sign,
            'x509_crl_read': x509_crl_read,
        }
