# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""A workload is behind its Secret exactly when the serial it runs with (its record, or the serial
the server presents) is not the Secret's; the record a restart writes makes it current."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.backstage.k8s.plugins.module_utils._certificate_record import (
    ANNOTATIONS, RecordError, annotation, is_behind, record_patch,
)


@pytest.fixture(scope='module')
def certificate(pki, ca) -> Any:
    return pki.client(ca)


def workload(annotations: Any) -> dict:
    return {'kind': 'Deployment', 'metadata': {'name': 'backstage-backend', 'annotations': annotations}}


CASES = {
    'no workload': ({}, True),
    'no annotations': (workload(None), True),
    'another annotation only': (workload({'backstage.k8s/config-checksum': 'x'}), True),
    'an older serial': (workload({ANNOTATIONS['backend']: '1234'}), True),
    "the other workload's record": (workload({ANNOTATIONS['postgres']: 'SERIAL'}), True),
    'the serial': (workload({ANNOTATIONS['backend']: 'SERIAL'}), False),
}


@pytest.mark.parametrize(('running', 'behind'), list(CASES.values()), ids=list(CASES))
def test_a_workload_is_behind_unless_its_record_is_the_secrets_serial(certificate, running, behind) -> None:
    serial = str(certificate.certificate.serial_number)
    annotations = (running.get('metadata') or {}).get('annotations') or {}
    running = workload({k: serial if v == 'SERIAL' else v for k, v in annotations.items()}) if running else running
    assert is_behind(running, certificate.pem, 'backend') is behind


def test_the_record_patch_makes_the_workload_current(certificate) -> None:
    patch = record_patch(certificate.pem, 'postgres')
    assert patch == {'metadata': {'annotations': {ANNOTATIONS['postgres']: str(certificate.certificate.serial_number)}}}
    statefulset = {'kind': 'StatefulSet', **patch}
    assert not is_behind(statefulset, certificate.pem, 'postgres')
    assert is_behind(statefulset, certificate.pem, 'backend')


@pytest.mark.parametrize('served_as', [int, str], ids=['integer', 'string'])
def test_a_served_serial_is_compared_instead_of_a_record(certificate, served_as) -> None:
    serial = certificate.certificate.serial_number
    assert not is_behind(served_as(serial), certificate.pem)
    assert is_behind(served_as(serial + 1), certificate.pem)


def test_the_annotations_are_the_ones_earlier_versions_recorded() -> None:
    # Deployments recorded by earlier versions keep their record.
    assert annotation('backend') == 'backstage.k8s/postgres-client-certificate-serial'
    assert annotation('postgres') == 'backstage.k8s/postgres-server-certificate-serial'


@pytest.mark.parametrize('bad', ['', 'not a certificate', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
                         ids=['empty', 'text', 'broken PEM'])
def test_a_certificate_that_cannot_be_read_is_an_error(bad: str) -> None:
    with pytest.raises(RecordError, match='not a PEM certificate'):
        is_behind({}, bad, 'backend')


def test_an_unknown_component_is_an_error(certificate) -> None:
    with pytest.raises(RecordError, match='unknown component'):
        record_patch(certificate.pem, 'frontend')
