# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Whether PostgreSQL and the Backstage backend run with the certificates in their Secrets.

Both read their certificate when they start (PostgreSQL also on reload), so a certificate newly
written to a Secret is not in use until they restart. Whoever makes one of them load a certificate
records its serial in an annotation of the workload's metadata (a metadata annotation does not
roll the pods): the postgres and backstage roles with the restart, the rotation job once the
server presents it or the backend has rolled. A workload is behind its Secret when that record is
not the Secret's serial, whatever happened to the run that wrote the Secret; the rotation job can
also give the serial PostgreSQL presents in a TLS handshake instead of the record.

Private to the collection: used by the certificate_record filters (the postgres, backstage and
cert_rotation roles) and their unit tests.
"""

from __future__ import annotations

import traceback
from typing import Any, Dict, Mapping, Union

try:
    from cryptography import x509
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()  # type: str | None
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# The workload each certificate is loaded by, and the annotation of its metadata that records the
# serial (decimal) of the certificate it runs with.
ANNOTATIONS = {
    'backend': 'backstage.k8s/postgres-client-certificate-serial',
    'postgres': 'backstage.k8s/postgres-server-certificate-serial',
}


class RecordError(Exception):
    """Input that cannot be compared; the message is meant for a person."""


def annotation(component: str) -> str:
    """The annotation that records the serial ``component`` ('backend' or 'postgres') runs with."""
    try:
        return ANNOTATIONS[component]
    except KeyError:
        raise RecordError('unknown component {0!r}: expected one of {1}'.format(component, ', '.join(sorted(ANNOTATIONS))))


def certificate_serial(certificate_pem: str) -> str:
    """The serial number (decimal) of a PEM certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode('utf-8'))
    except ValueError as exc:
        raise RecordError('not a PEM certificate: {0}'.format(exc))
    return str(certificate.serial_number)


def recorded_serial(workload: Mapping[str, Any], component: str) -> str:
    """The serial recorded on a workload object ('' when it has no record or does not exist)."""
    name = annotation(component)
    annotations = ((workload or {}).get('metadata') or {}).get('annotations') or {}
    return str(annotations.get(name, ''))


def is_behind(running: Union[Mapping[str, Any], int, str, None], certificate_pem: str, component: str = '') -> bool:
    """Whether what runs differs from the certificate: ``running`` is the workload object (its
    record is read; no record, or no workload, counts as behind) or the serial it presents."""
    if isinstance(running, (int, str)) and not isinstance(running, bool):
        running_serial = str(running)
    else:
        running_serial = recorded_serial(running or {}, component)
    return running_serial != certificate_serial(certificate_pem)


def record_patch(certificate_pem: str, component: str) -> Dict[str, Any]:
    """The patch of a workload's metadata that records ``certificate_pem`` as the one it runs with."""
    return {'metadata': {'annotations': {annotation(component): certificate_serial(certificate_pem)}}}
