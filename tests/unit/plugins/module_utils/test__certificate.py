# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The certificate checks behave as PostgreSQL's ``cert`` authentication does."""

from __future__ import annotations

import datetime
import re
from typing import Callable, List, Optional

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    CertificateError,
    check,
    describe,
    load_certificate,
    load_certificates,
)

USER = 'postgres'


def problems_for(pki, ca, make: Callable, cas: Optional[Callable] = None, min_days_left: int = 0) -> List[str]:
    certificate = make(pki, ca).certificate
    trusted = [ca.certificate] if cas is None else [issued.certificate for issued in cas(pki, ca)]
    return check(certificate, USER, cas=trusted, min_days_left=min_days_left, now=pki.now)


# (id, make the client certificate, make the trusted CAs or None for [ca], min_days_left, expected problems)
CASES = [
    ('match', lambda pki, ca: pki.client(ca), None, 0, []),
    ('match-with-rsa-ca', lambda pki, ca: pki.client(pki.rsa_ca), lambda pki, ca: [pki.rsa_ca], 0, []),
    ('mismatch', lambda pki, ca: pki.client(ca, ['backstage']), None, 0,
     [r'^certificate CN "backstage" does not match the database user "postgres"$']),
    ('upper-case', lambda pki, ca: pki.client(ca, ['Postgres']), None, 0,
     [r'^certificate CN "Postgres" does not match the database user "postgres" \(they differ only in case']),
    ('leading-space', lambda pki, ca: pki.client(ca, [' postgres']), None, 0,
     [r'^certificate CN " postgres" does not match the database user "postgres" \(they differ only']),
    ('trailing-space', lambda pki, ca: pki.client(ca, ['postgres ']), None, 0,
     [r'^certificate CN "postgres " does not match the database user "postgres" \(they differ only']),
    ('two-cns', lambda pki, ca: pki.client(ca, ['postgres', 'backstage']), None, 0,
     [r'^certificate has 2 CNs \("postgres", "backstage"\); PostgreSQL needs exactly one CN equal to the '
      r'database user "postgres"$']),
    ('same-cn-twice', lambda pki, ca: pki.client(ca, ['postgres', 'postgres']), None, 0, [r'has 2 CNs']),
    ('no-cn', lambda pki, ca: pki.client(ca, []), None, 0,
     [r'^certificate has no CN in its subject \("O=backstage-k8s"\); the database user "postgres" needs CN=postgres$']),
    ('other-ca', lambda pki, ca: pki.client(pki.other_ca), None, 0,
     [r'^certificate was issued by "CN=other CA", not by the given CA "CN=backstage-k8s test CA"$']),
    ('same-name-other-key', lambda pki, ca: pki.client(pki.impostor_ca), None, 0,
     [r'^certificate names "CN=backstage-k8s test CA" as its issuer but its signature does not verify']),
    ('expired', lambda pki, ca: pki.client(ca, valid_from_days=-46, valid_for_days=45), None, 0,
     [r'^certificate expired \d{14}Z \(now is \d{14}Z\)$']),
    ('not-yet-valid', lambda pki, ca: pki.client(ca, valid_from_days=1), None, 0,
     [r'^certificate is not yet valid: its validity starts \d{14}Z']),
    ('days-left-below-threshold', lambda pki, ca: pki.client(ca, valid_from_days=-31, valid_for_days=45), None, 15,
     [r'^certificate expires \d{14}Z, 14 day\(s\) from now, fewer than min_days_left=15$']),
    ('days-left-at-threshold', lambda pki, ca: pki.client(ca, valid_from_days=-30, valid_for_days=45), None, 15, []),
    ('days-left-above-threshold', lambda pki, ca: pki.client(ca), None, 15, []),
    ('ca-that-is-not-a-ca', lambda pki, ca: pki.client(pki.not_a_ca), lambda pki, ca: [pki.not_a_ca], 0,
     [r'^the CA certificate "CN=just a leaf" is not a CA: its basicConstraints say CA:FALSE$']),
    ('ca-without-basic-constraints', lambda pki, ca: pki.client(pki.no_constraints_ca),
     lambda pki, ca: [pki.no_constraints_ca], 0,
     [r'^the CA certificate "CN=no constraints" is not a CA: it has no basicConstraints extension$']),
    ('ca-without-key-cert-sign', lambda pki, ca: pki.client(pki.no_cert_sign_ca),
     lambda pki, ca: [pki.no_cert_sign_ca], 0, [r'may not sign certificates: its keyUsage lacks keyCertSign$']),
    ('expired-ca', lambda pki, ca: pki.client(pki.expired_ca, valid_from_days=-1, valid_for_days=2),
     lambda pki, ca: [pki.expired_ca], 0, [r'^the CA certificate "CN=expired CA" expired ']),
    ('ca-bundle-holding-the-ca', lambda pki, ca: pki.client(ca), lambda pki, ca: [pki.other_ca, ca], 0, []),
    ('ca-bundle-without-the-ca', lambda pki, ca: pki.client(ca), lambda pki, ca: [pki.other_ca, pki.rsa_ca], 0,
     [r'^certificate was issued by "CN=backstage-k8s test CA", which is none of the 2 given CA certificates '
      r'\("CN=other CA", "CN=rsa CA"\)$']),
    ('no-ca-given', lambda pki, ca: pki.client(pki.other_ca), lambda pki, ca: [], 0, []),
    ('several-problems-at-once', lambda pki, ca: pki.client(pki.other_ca, ['Postgres'], valid_from_days=2), None, 0,
     [r'does not match the database user "postgres"', r'is not yet valid', r'issued by "CN=other CA"']),
]


@pytest.mark.parametrize('make, cas, min_days_left, expected', [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_check_reports_exactly_what_postgres_would_refuse(pki, ca, make, cas, min_days_left, expected):
    problems = problems_for(pki, ca, make, cas, min_days_left)
    assert len(problems) == len(expected), problems
    for problem, pattern in zip(problems, expected):
        assert re.search(pattern, problem), (pattern, problem)


def test_describe_returns_the_facts_of_a_matching_certificate(pki, ca):
    client = pki.client(ca, valid_from_days=-1, valid_for_days=45)
    facts = describe(client.certificate, USER, now=pki.now)
    expected_not_before = (pki.now - datetime.timedelta(days=1)).strftime('%Y%m%d%H%M%SZ')
    expected_not_after = (pki.now + datetime.timedelta(days=44)).strftime('%Y%m%d%H%M%SZ')
    assert facts == {
        'cn': 'postgres',
        'common_names': ['postgres'],
        'subject': 'CN=postgres,O=backstage-k8s',
        'serial': client.certificate.serial_number,
        'issuer': 'CN=backstage-k8s test CA',
        'not_before': expected_not_before,
        'not_after': expected_not_after,
        'days_left': 44,
        'matches': True,
    }


@pytest.mark.parametrize('common_names, cn, matches', [
    (['Postgres'], 'Postgres', False),
    (['postgres', 'postgres'], None, False),
    ([], None, False),
], ids=['other-cn', 'two-cns', 'no-cn'])
def test_describe_matches_only_a_single_exact_cn(pki, ca, common_names, cn, matches):
    facts = describe(pki.client(ca, common_names).certificate, USER, now=pki.now)
    assert (facts['cn'], facts['common_names'], facts['matches']) == (cn, common_names, matches)


@pytest.mark.parametrize('seconds_left, days', [
    (10 * 86400 - 1, 9),
    (10 * 86400, 10),
    (59, 0),
    (-1, -1),
    (-86401, -2),
], ids=['just-under-10-days', '10-days', 'under-a-minute', 'expired-a-second-ago', 'expired-a-day-ago'])
def test_days_left_is_rounded_down(pki, ca, seconds_left, days):
    client = pki.client(ca, valid_from_days=-60, not_after=pki.now + datetime.timedelta(seconds=seconds_left))
    assert describe(client.certificate, USER, now=pki.now)['days_left'] == days


def test_load_certificate_takes_the_leaf_of_a_chain(pki, ca):
    client = pki.client(ca)
    assert load_certificate(client.pem + ca.pem) == client.certificate
    assert load_certificate(client.pem.encode('ascii')) == client.certificate


def test_load_certificates_reads_every_certificate_of_a_bundle(pki, ca):
    assert load_certificates(pki.other_ca.pem + '\n' + ca.pem) == [pki.other_ca.certificate, ca.certificate]


def test_load_certificate_skips_other_pem_blocks_before_the_certificate(pki, ca):
    client = pki.client(ca)
    parameters = '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n'
    assert load_certificate(parameters + client.pem) == client.certificate


def _der(pki, ca) -> bytes:
    return pki.client(ca).certificate.public_bytes(serialization.Encoding.DER)


def _corrupted(pki, ca) -> str:
    lines = pki.client(ca).pem.splitlines()
    return '\n'.join(lines[:2] + lines[4:]) + '\n'


BAD_INPUT = [
    ('empty', lambda pki, ca: '', r'^certificate is empty$'),
    ('whitespace', lambda pki, ca: ' \n\t\n', r'^certificate is empty$'),
    ('garbage', lambda pki, ca: 'this is not a certificate', r'^certificate is not a PEM certificate: no '),
    ('binary-garbage', lambda pki, ca: b'\x00\xff\xfe\x80', r'^certificate is not a PEM certificate'),
    ('der-instead-of-pem', _der, r'^certificate is not a PEM certificate'),
    ('private-key', lambda pki, ca: ca.key_pem,
     r'^certificate contains a private key \("PRIVATE KEY" block\), not a certificate$'),
    ('csr', lambda pki, ca: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
     r'^certificate is not a certificate: it holds only CERTIFICATE REQUEST PEM block\(s\)$'),
    ('corrupted-body', _corrupted, r'^certificate: PEM block 1 is not a valid X.509 certificate'),
    ('truncated', lambda pki, ca: ca.pem[:200], r'^certificate is not a PEM certificate'),
]


@pytest.mark.parametrize('make, message', [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_refused_with_a_message(pki, ca, make, message):
    with pytest.raises(CertificateError) as raised:
        load_certificate(make(pki, ca))
    assert re.search(message, str(raised.value)), str(raised.value)


def test_a_private_key_is_never_echoed(ca):
    with pytest.raises(CertificateError) as raised:
        load_certificate(ca.key_pem, what='certificate_path /etc/tls/tls.crt')
    body = ca.key_pem.splitlines()[1]
    assert body not in str(raised.value)
    assert str(raised.value).startswith('certificate_path /etc/tls/tls.crt contains a private key')
