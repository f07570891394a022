# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Parse and check X.509 client certificates for PostgreSQL ``cert`` authentication.

PostgreSQL's ``cert`` method accepts a client certificate when it is signed by the
server's ``ssl_ca_file``, is valid now, and its subject CN is *exactly* the database
user (case and whitespace matter). This module checks the same things before a
certificate is put in front of the database, so a bad certificate is caught with a
message a person can act on instead of an opaque TLS or authentication error.

Private to the collection: used by the ``cert_cn_check`` module and its action plugin (which
the pki and backstage roles and the certificate rotation job run). Everything here is a plain
function that raises :class:`CertificateError` or returns a list of problems or a result;
nothing exits the process.
"""

from __future__ import annotations

import datetime
import json
import re
import traceback

from ansible.module_utils.common.text.converters import to_native

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()  # type: str | None
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# The timestamp format community.crypto's x509_certificate_info returns (ASN.1 TIME, UTC),
# so results of both can be compared and fed to the same filters.
ASN1_TIME_FORMAT = '%Y%m%d%H%M%SZ'

_PEM_BLOCK = re.compile(
    r'-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>.*?)-----END (?P=label)-----',
    re.DOTALL,
)
_SECONDS_PER_DAY = 86400


class CertificateError(Exception):
    """Input that is not a usable certificate; the message is meant for a person."""


def quote(value: str) -> str:
    """Quote a string so that case, leading/trailing spaces and control characters show."""
    return json.dumps(value, ensure_ascii=False)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    return data.encode('utf-8')


def _load_pem_blocks(data: bytes | str, what: str) -> list[x509.Certificate]:
    """Return every certificate in PEM ``data``, in order; ``what`` names the input in messages."""
    text = _as_bytes(data).decode('utf-8', errors='replace')
    if not text.strip():
        raise CertificateError('{0} is empty'.format(what))
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise CertificateError(
            '{0} is not a PEM certificate: no "-----BEGIN CERTIFICATE-----" block found'.format(what))
    certificates = []
    for number, block in enumerate(blocks, start=1):
        label = block.group('label')
        if label not in ('CERTIFICATE', 'X509 CERTIFICATE', 'TRUSTED CERTIFICATE'):
            if 'PRIVATE KEY' in label:
                # Say what it is, never echo it.
                raise CertificateError(
                    '{0} contains a private key ("{1}" block), not a certificate'.format(what, label))
            continue
        pem = '-----BEGIN CERTIFICATE-----\n{0}-----END CERTIFICATE-----\n'.format(block.group('body'))
        try:
            certificates.append(x509.load_pem_x509_certificate(pem.encode('ascii', errors='replace')))
        except ValueError as exc:
            raise CertificateError(
                '{0}: PEM block {1} is not a valid X.509 certificate ({2})'.format(what, number, exc))
    if not certificates:
        labels = ', '.join(sorted(set(block.group('label') for block in blocks)))
        raise CertificateError(
            '{0} is not a certificate: it holds only {1} PEM block(s)'.format(what, labels))
    return certificates


def load_certificate(data: bytes | str, what: str = 'certificate') -> x509.Certificate:
    """Load the first certificate of a PEM file (the leaf of a chain file).

    Raises CertificateError when ``data`` is empty, not PEM, a private key, or broken.
    """
    return _load_pem_blocks(data, what)[0]


def load_certificates(data: bytes | str, what: str = 'CA certificate') -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle (for example a CA file that holds an old and a new CA)."""
    return _load_pem_blocks(data, what)


def common_names(certificate: x509.Certificate) -> list[str]:
    """Every CN attribute of the subject, in order, exactly as encoded."""
    return [str(attribute.value) for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def not_valid_before(certificate: x509.Certificate) -> datetime.datetime:
    if hasattr(certificate, 'not_valid_before_utc'):  # cryptography >= 42
        return certificate.not_valid_before_utc
    return certificate.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def not_valid_after(certificate: x509.Certificate) -> datetime.datetime:
    if hasattr(certificate, 'not_valid_after_utc'):  # cryptography >= 42
        return certificate.not_valid_after_utc
    return certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def days_left(certificate: x509.Certificate, now: datetime.datetime | None = None) -> int:
    """Whole days until the certificate expires, rounded down; negative once it has expired."""
    now = now or utcnow()
    return int((not_valid_after(certificate) - now).total_seconds() // _SECONDS_PER_DAY)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime(ASN1_TIME_FORMAT)


def describe(certificate: x509.Certificate, user: str | None = None,
             now: datetime.datetime | None = None) -> dict:
    """The facts a caller needs about a client certificate, as plain JSON-able values.

    ``cn`` is the subject's CN when there is exactly one, else None (``common_names`` lists them
    all). ``matches`` tells whether that CN is exactly ``user``.
    """
    names = common_names(certificate)
    cn = names[0] if len(names) == 1 else None
    return {
        'cn': cn,
        'common_names': names,
        'subject': certificate.subject.rfc4514_string(),
        'serial': certificate.serial_number,
        'issuer': certificate.issuer.rfc4514_string(),
        'not_before': format_time(not_valid_before(certificate)),
        'not_after': format_time(not_valid_after(certificate)),
        'days_left': days_left(certificate, now),
        'matches': cn is not None and user is not None and cn == user,
    }


def check_common_name(certificate: x509.Certificate, user: str) -> list[str]:
    """Problems that keep PostgreSQL ``cert`` auth from mapping this certificate to ``user``."""
    names = common_names(certificate)
    if not names:
        return ['certificate has no CN in its subject ({0}); the database user {1} needs CN={2}'.format(
            quote(certificate.subject.rfc4514_string()), quote(user), user)]
    if len(names) > 1:
        return ['certificate has {0} CNs ({1}); PostgreSQL needs exactly one CN equal to the database user {2}'.format(
            len(names), ', '.join(quote(name) for name in names), quote(user))]
    if names[0] != user:
        hint = ''
        if names[0].strip().lower() == user.strip().lower():
            hint = ' (they differ only in case or whitespace, which PostgreSQL does not ignore)'
        return ['certificate CN {0} does not match the database user {1}{2}'.format(
            quote(names[0]), quote(user), hint)]
    return []


def check_validity(certificate: x509.Certificate, min_days_left: int = 0,
                   now: datetime.datetime | None = None, what: str = 'certificate') -> list[str]:
    """Problems with the validity period at ``now``, and fewer than ``min_days_left`` days to go."""
    now = now or utcnow()
    start = not_valid_before(certificate)
    end = not_valid_after(certificate)
    if now < start:
        return ['{0} is not yet valid: its validity starts {1} (now is {2})'.format(
            what, format_time(start), format_time(now))]
    if now > end:
        return ['{0} expired {1} (now is {2})'.format(what, format_time(end), format_time(now))]
    left = days_left(certificate, now)
    if left < min_days_left:
        return ['{0} expires {1}, {2} day(s) from now, fewer than min_days_left={3}'.format(
            what, format_time(end), left, min_days_left)]
    return []


def _verify_signature(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise InvalidSignature (or ValueError/TypeError if it cannot be checked)."""
    if hasattr(certificate, 'verify_directly_issued_by'):  # cryptography >= 40
        certificate.verify_directly_issued_by(issuer)
        return
    key = issuer.public_key()
    signature = certificate.signature
    data = certificate.tbs_certificate_bytes
    if isinstance(key, rsa.RSAPublicKey):
        if certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
            raise ValueError('RSASSA-PSS signatures need cryptography 40 or later to be checked')
        key.verify(signature, data, padding.PKCS1v15(), certificate.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(certificate.signature_hash_algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    else:
        raise TypeError('unsupported CA key type {0}'.format(type(key).__name__))


def _problems_as_ca(ca: x509.Certificate, now: datetime.datetime) -> list[str]:
    subject = quote(ca.subject.rfc4514_string())
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return ['the CA certificate {0} is not a CA: it has no basicConstraints extension'.format(subject)]
    if not constraints.ca:
        return ['the CA certificate {0} is not a CA: its basicConstraints say CA:FALSE'.format(subject)]
    problems = []
    try:
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        problems.append('the CA certificate {0} may not sign certificates: its keyUsage lacks keyCertSign'.format(subject))
    problems.extend(check_validity(ca, now=now, what='the CA certificate {0}'.format(subject)))
    return problems


def _problems_with_issuer(certificate: x509.Certificate, ca: x509.Certificate, now: datetime.datetime) -> list[str]:
    problems = _problems_as_ca(ca, now)
    issuer = quote(certificate.issuer.rfc4514_string())
    subject = quote(ca.subject.rfc4514_string())
    if certificate.issuer != ca.subject:
        problems.append('certificate was issued by {0}, not by the given CA {1}'.format(issuer, subject))
        return problems
    try:
        _verify_signature(certificate, ca)
    except InvalidSignature:
        problems.append('certificate names {0} as its issuer but its signature does not verify with '
                        'the public key of the given CA: it was signed by another key'.format(issuer))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        problems.append('certificate signature cannot be checked against the CA {0}: {1}'.format(subject, exc))
    return problems


def check_issued_by(certificate: x509.Certificate, cas: list[x509.Certificate],
                    now: datetime.datetime | None = None) -> list[str]:
    """Problems unless one of ``cas`` is a valid CA that signed ``certificate`` directly."""
    now = now or utcnow()
    if not cas:
        return []
    per_ca = [(ca, _problems_with_issuer(certificate, ca, now)) for ca in cas]
    for _ca, problems in per_ca:
        if not problems:
            return []
    named = [problems for ca, problems in per_ca if ca.subject == certificate.issuer]
    if named:
        return named[0]
    if len(cas) == 1:
        return per_ca[0][1]
    return ['certificate was issued by {0}, which is none of the {1} given CA certificates ({2})'.format(
        quote(certificate.issuer.rfc4514_string()), len(cas),
        ', '.join(quote(ca.subject.rfc4514_string()) for ca in cas))]


def check(certificate: x509.Certificate, user: str, cas: list[x509.Certificate] | None = None,
          min_days_left: int = 0, now: datetime.datetime | None = None) -> list[str]:
    """Every reason PostgreSQL would refuse ``certificate`` for ``user``; empty when it is fine.

    ``cas`` are the certificates PostgreSQL trusts (its ``ssl_ca_file``); when None or empty the
    signature is not checked. ``min_days_left`` asks for that many whole days of validity left.
    """
    now = now or utcnow()
    problems = check_common_name(certificate, user)
    problems.extend(check_validity(certificate, min_days_left=min_days_left, now=now))
    problems.extend(check_issued_by(certificate, cas or [], now=now))
    return problems


# cert_cn_check's arguments, shared by the module and its action plugin.
CN_CHECK_ARGUMENT_SPEC = dict(
    # Not logged: a private key pasted here by mistake must not end up in logs.
    certificate=dict(type='str', no_log=True),
    certificate_path=dict(type='path'),
    user=dict(type='str', required=True, aliases=['database_user']),
    ca_certificate=dict(type='str', no_log=True),
    ca_certificate_path=dict(type='path'),
    min_days_left=dict(type='int', default=0),
)
CN_CHECK_MUTUALLY_EXCLUSIVE = [
    ['certificate', 'certificate_path'],
    ['ca_certificate', 'ca_certificate_path'],
]
CN_CHECK_REQUIRED_ONE_OF = [['certificate', 'certificate_path']]
CN_CHECK_PATH_OPTIONS = tuple(name for name, spec in CN_CHECK_ARGUMENT_SPEC.items() if spec['type'] == 'path')


def read_pem(params: dict, content_option: str, path_option: str) -> tuple[bytes | None, str]:
    """The PEM bytes given by content or path (None if neither), and how to name them in messages.

    A path is read on the host this runs on.
    """
    content = params.get(content_option)
    if content is not None:
        return content.encode('utf-8'), content_option
    path = params.get(path_option)
    if path is None:
        return None, content_option
    what = '{0} {1}'.format(path_option, path)
    try:
        with open(path, 'rb') as handle:
            return handle.read(), what
    except (IOError, OSError) as exc:
        raise CertificateError('cannot read {0}: {1}'.format(what, to_native(exc.strerror or exc)))


def cn_check(params: dict, now: datetime.datetime | None = None) -> dict:
    """cert_cn_check's whole run on its validated ``params``: the module's result.

    A refused certificate gives ``failed`` true, a ``msg`` and every problem, with whatever
    could be read of the certificate.
    """
    user = params['user']
    min_days_left = params['min_days_left']
    if user == '':
        return dict(failed=True, msg='user must not be empty: it is the CN the certificate must have', problems=[])
    if min_days_left < 0:
        return dict(failed=True, msg='min_days_left must be 0 or more, got {0}'.format(min_days_left), problems=[])

    now = now or utcnow()
    try:
        data, what = read_pem(params, 'certificate', 'certificate_path')
        certificate = load_certificate(data, what)
    except CertificateError as exc:
        return dict(failed=True, msg=to_native(exc), problems=[to_native(exc)])

    result = describe(certificate, user, now=now)
    try:
        ca_data, ca_what = read_pem(params, 'ca_certificate', 'ca_certificate_path')
        cas = None if ca_data is None else load_certificates(ca_data, ca_what)
    except CertificateError as exc:
        return dict(result, failed=True, msg=to_native(exc), problems=[to_native(exc)])

    problems = check(certificate, user, cas=cas, min_days_left=min_days_left, now=now)
    if problems:
        prefix = '' if what == 'certificate' else '{0}: '.format(what)
        return dict(result, failed=True, msg=prefix + '; '.join(problems), problems=problems)
    return dict(result, changed=False, problems=[])
