# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Sign and read the certificate revocation list (CRL) PostgreSQL loads as ``ssl_crl_file``.

PostgreSQL (OpenSSL) checks every client certificate against the CRL, and refuses *every* client
certificate once the CRL is past its next update or its signature does not verify with the CA:
a CRL must be signed by the CA that issues the client certificates and re-issued in time.

Private to the collection: used by the ``x509_crl_sign`` and ``x509_crl_read`` filters, which
the pki role runs (from site.yml and from the rotation job). Plain functions that raise
:class:`CrlError` with a message a person can act on; nothing exits the process.
"""

from __future__ import annotations

import datetime
import re
import traceback
import typing as t

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    ASN1_TIME_FORMAT,
    CertificateError,
    format_time,
    load_certificate,
    load_certificates,
    utcnow,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()  # type: str | None
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None


class CrlError(Exception):
    """Input that is not a usable CRL, CA or entry; the message never echoes a key."""


def parse_time(value: str, what: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(value, ASN1_TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        raise CrlError('{0} {1!r} is not a time as YYYYMMDDHHMMSSZ (UTC)'.format(what, value))


def _serial(value: t.Any) -> int:
    try:
        serial = int(str(value), 10)
    except ValueError:
        raise CrlError('serial number {0!r} is not a decimal integer'.format(value))
    if serial <= 0:
        raise CrlError('serial number {0} must be positive'.format(serial))
    return serial


def _load_ca(ca_certificate: str) -> x509.Certificate:
    try:
        return load_certificate(ca_certificate, 'the CA certificate')
    except CertificateError as exc:
        raise CrlError(str(exc))


def _load_key(ca_private_key: str) -> t.Any:
    try:
        return serialization.load_pem_private_key(ca_private_key.encode('utf-8'), password=None)
    except (TypeError, ValueError):
        # Never the key itself in the message.
        raise CrlError('the CA private key is not an unencrypted PEM private key')


def sign(ca_certificate: str, ca_private_key: str, revoked: list[t.Any],
         next_update: str, now: datetime.datetime | None = None) -> str:
    """A PEM CRL signed by the CA, listing ``revoked`` (each a serial number, or a dict with
    ``serial_number`` and ``revocation_date`` as YYYYMMDDHHMMSSZ, now when absent), valid from now
    until ``next_update``.

    Serials listed twice are listed once, with their earliest date. The CRL number is the time of
    issue in seconds, so that a later CRL has a larger one.
    """
    now = (now or utcnow()).replace(microsecond=0)
    ca = _load_ca(ca_certificate)
    key = _load_key(ca_private_key)
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CrlError('the CA private key does not belong to the CA certificate {0}'.format(ca.subject.rfc4514_string()))
    until = parse_time(next_update, 'next_update')
    if until <= now:
        raise CrlError('next_update {0} is not in the future (now is {1})'.format(next_update, format_time(now)))

    dates: dict[int, datetime.datetime] = {}
    for entry in revoked:
        if not isinstance(entry, dict):
            entry = {'serial_number': entry}
        if 'serial_number' not in entry:
            raise CrlError('each revoked entry needs a serial_number, got {0!r}'.format(entry))
        serial = _serial(entry['serial_number'])
        date = now
        if entry.get('revocation_date'):
            date = parse_time(entry['revocation_date'], 'revocation_date of serial {0}'.format(serial))
        dates[serial] = min(date, dates.get(serial, date))

    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.subject)
               .last_update(now)
               .next_update(until)
               .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    except x509.ExtensionNotFound:
        pass
    for serial in sorted(dates):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(dates[serial]).build())
    algorithm = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        algorithm = hashes.SHA384()
    crl = builder.sign(private_key=key, algorithm=algorithm)
    return crl.public_bytes(serialization.Encoding.PEM).decode('ascii')


def _update_time(crl: x509.CertificateRevocationList, name: str) -> datetime.datetime | None:
    utc = getattr(crl, name + '_utc', None)  # cryptography >= 42
    if utc is not None:
        return utc
    value = getattr(crl, name)
    return None if value is None else value.replace(tzinfo=datetime.timezone.utc)


def _revocation_date(entry: x509.RevokedCertificate) -> datetime.datetime:
    utc = getattr(entry, 'revocation_date_utc', None)  # cryptography >= 42
    if utc is not None:
        return utc
    return entry.revocation_date.replace(tzinfo=datetime.timezone.utc)


_CRL_PEM = re.compile(r'-----BEGIN X509 CRL-----.*?-----END X509 CRL-----', re.DOTALL)


def _read_one(crls: list[x509.CertificateRevocationList], ca: x509.Certificate) -> dict[str, t.Any]:
    """``read``'s answer for one CA: the first of ``crls`` issued and signed by it."""
    result: dict[str, t.Any] = {'usable': False, 'problem': '', 'next_update': '', 'revoked': []}
    for crl in crls:
        if crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key()):
            break
    else:
        result['problem'] = 'the CRL is not signed by the CA {0}'.format(ca.subject.rfc4514_string())
        return result
    next_update = _update_time(crl, 'next_update')
    result['next_update'] = format_time(next_update) if next_update else ''
    result['revoked'] = [{'serial_number': entry.serial_number, 'revocation_date': format_time(_revocation_date(entry))}
                         for entry in crl]
    if not next_update:
        result['problem'] = 'the CRL has no next update'
        return result
    result['usable'] = True
    return result


def read(crl_pem: str, ca_certificate: str) -> dict[str, t.Any]:
    """What a caller needs to decide whether to re-issue the CRL.

    ``ca_certificate`` is one CA or a bundle of CAs (during a CA rollover PostgreSQL trusts an old
    and a new CA, and OpenSSL then needs a CRL from each), and ``crl_pem`` one PEM CRL or several.
    ``usable`` is true when, for every CA, a CRL issued by it verifies with its key and has a next
    update; ``problem`` says why not (empty input: "there is no CRL"). ``next_update`` is the
    earliest of those CRLs', ``revoked`` (``serial_number``, ``revocation_date``) what the CRLs
    that verify list, each serial once with its earliest date (what a new CRL may keep).
    """
    result: dict[str, t.Any] = {'usable': False, 'problem': '', 'next_update': '', 'revoked': []}
    if not crl_pem or not crl_pem.strip():
        result['problem'] = 'there is no CRL'
        return result
    try:
        cas = load_certificates(ca_certificate, 'the CA certificate')
    except CertificateError as exc:
        raise CrlError(str(exc))
    blocks = _CRL_PEM.findall(crl_pem) or [crl_pem]
    try:
        crls = [x509.load_pem_x509_crl(block.encode('utf-8')) for block in blocks]
    except ValueError as exc:
        result['problem'] = 'the CRL cannot be read ({0})'.format(exc)
        return result
    answers = [_read_one(crls, ca) for ca in cas]
    dates: dict[int, str] = {}
    for answer in answers:
        for entry in answer['revoked']:
            serial = entry['serial_number']
            dates[serial] = min(entry['revocation_date'], dates.get(serial, entry['revocation_date']))
    result['revoked'] = [{'serial_number': serial, 'revocation_date': dates[serial]} for serial in sorted(dates)]
    updates = [answer['next_update'] for answer in answers if answer['next_update']]
    result['next_update'] = min(updates) if updates else ''
    problems = [answer['problem'] for answer in answers if answer['problem']]
    result['problem'] = problems[0] if problems else ''
    result['usable'] = not problems
    return result
