# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The pki role's decision for every leaf certificate at once: keep it, or renew it and why.

It runs in the controller's process, in the task that already holds the Secrets: one task for
all leaves instead of a parse and a decision task for each."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    CertificateError,
)
from ansible_collections.backstage.k8s.plugins.module_utils._crl import CrlError
from ansible_collections.backstage.k8s.plugins.module_utils._leaf_renewal import leaf_renewal as _leaf_renewal


def leaf_renewal(reads: List[Dict[str, Any]], ca: Dict[str, Any], ca_previous: Dict[str, Any], ca_phase: str,
                 ca_new: bool, ca_bundle: str, force: bool, ttl_days: int, renew_after_days: float,
                 revoke_serials: List[Any]) -> List[Dict[str, Any]]:
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError('the Python library cryptography is needed: {0}'.format(CRYPTOGRAPHY_IMPORT_ERROR))
    try:
        return [_leaf_renewal(read['item'], (read.get('resources') or [{}])[0], ca or {}, ca_previous or {},
                              to_native(ca_phase or ''), bool(ca_new), to_native(ca_bundle or ''), bool(force),
                              int(ttl_days), float(renew_after_days), list(revoke_serials or []))
                for read in reads]
    except (CertificateError, CrlError) as exc:
        raise AnsibleFilterError('leaf_renewal: {0}'.format(to_native(exc)))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {'leaf_renewal': leaf_renewal}
