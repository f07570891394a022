# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Whether the pki role renews a leaf certificate, and why.

Private to the collection: used by the ``leaf_renewal`` filter, which the pki role runs in the
controller's process for every leaf Secret at once (from site.yml and from the rotation job
alike). It reads what a leaf's Secret holds, parses its certificate, key and CRL, and lists the
reasons to issue a new certificate; an empty list keeps the certificate.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import ipaddress
import typing as t

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    CertificateError,
    common_names,
    format_time,
    load_certificate,
    not_valid_after,
    not_valid_before,
    utcnow,
)
from ansible_collections.backstage.k8s.plugins.module_utils._crl import read as read_crl

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    # _certificate's HAS_CRYPTOGRAPHY is False then; the leaf_renewal filter checks it.
    pass

_SECONDS_PER_DAY = 86400
# What a leaf without a CRL (a client certificate) reads as: nothing to re-issue for.
_NO_CRL = {'usable': True, 'problem': '', 'next_update': '', 'revoked': []}

# The reasons in the order a report lists them.
_REASONS = (
    'pki_force_rotation is set',
    'there is no certificate yet',
    'the certificate cannot be read',
    'the key does not match the certificate',
    'the CA is new',
    'it was not issued by the current CA',
    'its ca.crt is not the CA\'s trust bundle',
    'its CN is not the wanted one',
    'its SANs are not the wanted ones',
    'its lifetime is not pki_leaf_ttl_days',
    'it is older than pki_leaf_renew_after_days',
    'its CRL is missing or not usable',
    'its CRL expires before it does',
    'a client certificate is to be revoked',
)


def _secret_text(data: dict, key: str) -> str:
    try:
        return base64.b64decode(data.get(key) or '').decode('utf-8')
    except (binascii.Error, UnicodeDecodeError):
        return ''


def _key_identifier(certificate: x509.Certificate, extension: type) -> bytes | None:
    try:
        value = certificate.extensions.get_extension_for_class(extension).value
    except x509.ExtensionNotFound:
        return None
    return value.key_identifier if extension is x509.AuthorityKeyIdentifier else value.digest


@functools.lru_cache(maxsize=4)
def _ca_key_identifier(certificate_pem: str, what: str) -> bytes | None:
    """A CA's subject key identifier: parsed once per process, not once per leaf."""
    return _key_identifier(load_certificate(certificate_pem, what), x509.SubjectKeyIdentifier)


def _public_key(key: t.Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _san(entry: t.Any) -> str:
    """A subjectAltName entry as the pki role writes it: DNS:name or IP:address."""
    if isinstance(entry, x509.DNSName):
        return 'DNS:' + entry.value
    if isinstance(entry, x509.IPAddress):
        return 'IP:' + entry.value.compressed
    return '{0}:{1}'.format(type(entry).__name__, entry.value)


def _wanted_san(entry: str) -> str:
    """An IP entry in its compressed form, as the certificate's reads back; other entries as they are."""
    if entry.startswith('IP:'):
        try:
            return 'IP:' + ipaddress.ip_address(entry[3:]).compressed
        except ValueError:
            return entry
    return entry


def _parse(certificate_pem: str, key_pem: str) -> tuple[x509.Certificate | None, bytes]:
    """The certificate and the key's public key; neither when either cannot be read."""
    try:
        certificate = load_certificate(certificate_pem) if certificate_pem else None
        key = serialization.load_pem_private_key(key_pem.encode('utf-8'), password=None) if key_pem else None
    except (CertificateError, ValueError, TypeError):
        return None, b''
    return certificate, _public_key(key.public_key()) if key is not None else b''


def leaf_renewal(leaf: dict, secret: dict, ca: dict, ca_previous: dict, ca_phase: str, ca_new: bool,
                 ca_bundle: str, force: bool, ttl_days: int, renew_after_days: float,
                 revoke_serials: list, now: datetime.datetime | None = None) -> dict:
    """The state of one leaf: what its Secret holds and the reasons to renew it.

    ``leaf`` is an item of the pki role's __pki_leaves, ``secret`` its Secret as read (empty when
    missing), ``ca`` and ``ca_previous`` the CA and the CA a rollover replaces (``certificate``,
    empty when unknown), ``ca_bundle`` what every leaf's ca.crt should hold. Returns ``leaf``,
    ``secret``, ``current`` (certificate, key, ca, crl as stored), ``reasons`` (why to renew, empty
    to keep it), ``crl`` (the stored CRL as the x509_crl_read filter reads it) and
    ``issuer_previous`` (whether a new certificate is signed by ``ca_previous``).
    """
    now = now or utcnow()
    data = secret.get('data') or {}
    current = {name: _secret_text(data, key) for name, key in
               (('certificate', 'tls.crt'), ('key', 'tls.key'), ('ca', 'ca.crt'), ('crl', 'ca.crl'))}
    certificate, key_public = _parse(current['certificate'], current['key'])
    authority_key = _key_identifier(certificate, x509.AuthorityKeyIdentifier) if certificate else None

    previous_subject_key = _ca_key_identifier(ca_previous['certificate'], 'the previous CA') if ca_previous else None
    # During a rollover, a leaf is issued by the old CA while the workloads learn to trust both
    # (phases start and trust), and by the one that issued it while the phase is held.
    issuer_previous = bool(ca_previous) and (
        ca_phase in ('start', 'trust')
        or (ca_phase == 'hold' and certificate is not None and authority_key == previous_subject_key))

    crl = read_crl(current['crl'], ca_bundle) if leaf['crl'] and ca else dict(_NO_CRL)
    checks = {'pki_force_rotation is set': bool(force),
              'there is no certificate yet': not current['certificate'] or not current['key'],
              'the certificate cannot be read': bool(current['certificate']) and certificate is None,
              'the CA is new': bool(ca_new)}
    if certificate is not None:
        issuer = ca_previous if issuer_previous else ca
        lifetime = not_valid_after(certificate) - not_valid_before(certificate)
        age = now - not_valid_before(certificate)
        names = common_names(certificate)
        try:
            sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = []
        checks.update({
            'the key does not match the certificate': key_public != _public_key(certificate.public_key()),
            'it was not issued by the current CA': (
                not ca_new and authority_key != _ca_key_identifier(issuer['certificate'], 'the CA')),
            'its CN is not the wanted one': (names[-1] if names else '') != leaf['common_name'],
            'its SANs are not the wanted ones': (sorted(_san(entry) for entry in sans)
                                                 != sorted(_wanted_san(entry) for entry in leaf['subject_alt_names'])),
            'its lifetime is not pki_leaf_ttl_days': round(lifetime.total_seconds() / _SECONDS_PER_DAY) != int(ttl_days),
            'it is older than pki_leaf_renew_after_days': age.total_seconds() / _SECONDS_PER_DAY >= float(renew_after_days),
            'its CRL expires before it does': (bool(leaf['crl']) and crl['usable']
                                               and crl['next_update'] < format_time(not_valid_after(certificate))),
        })
    checks['its ca.crt is not the CA\'s trust bundle'] = (
        not ca_new and bool(current['certificate']) and current['ca'].strip() != ca_bundle.strip())
    checks['its CRL is missing or not usable'] = not crl['usable']
    revoked = set(str(entry['serial_number']) for entry in crl['revoked'])
    checks['a client certificate is to be revoked'] = bool(leaf['crl']) and bool(
        set(str(serial) for serial in revoke_serials) - revoked)
    return {
        'leaf': leaf,
        'secret': secret,
        'current': current,
        'reasons': [reason for reason in _REASONS if checks.get(reason)],
        'crl': crl,
        'issuer_previous': issuer_previous,
    }
