# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Real certificates for the tests, made with cryptography: a CA and client certificates."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)
CA_NAME = 'backstage-k8s test CA'


@dataclass
class Issued:
    """A certificate and the private key that goes with it."""

    certificate: x509.Certificate
    key: object

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode('ascii')

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
        ).decode('ascii')


class Pki:
    """Makes CAs and client certificates relative to a fixed ``now``."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    @staticmethod
    def _key(kind: str) -> object:
        if kind == 'rsa':
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def _build(self, subject: x509.Name, issuer: Optional[Issued], key: object,
               not_before: datetime.datetime, not_after: datetime.datetime,
               extensions: Sequence[x509.ExtensionType]) -> Issued:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(key.public_key())  # type: ignore[attr-defined]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=isinstance(extension, x509.BasicConstraints))
        signer = issuer.key if issuer else key
        return Issued(builder.sign(signer, hashes.SHA256()), key)  # type: ignore[arg-type]

    def ca(self, name: str = CA_NAME, is_ca: Optional[bool] = True, key_cert_sign: bool = True,
           key: str = 'ec', valid_from_days: float = -1, valid_for_days: float = 3650,
           signer: Optional[Issued] = None) -> Issued:
        """A self-signed CA (or, with ``is_ca`` False/None, a certificate posing as one)."""
        extensions: list = []
        if is_ca is not None:
            extensions.append(x509.BasicConstraints(ca=is_ca, path_length=None))
        extensions.append(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=key_cert_sign,
            encipher_only=False, decipher_only=False,
        ))
        start = self.now + valid_from_days * DAY
        return self._build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), signer, self._key(key),
                           start, start + valid_for_days * DAY, extensions)

    def client(self, issuer: Issued, common_names: Sequence[str] = ('postgres',), valid_from_days: float = -1,
               valid_for_days: float = 45, not_after: Optional[datetime.datetime] = None) -> Issued:
        """A client certificate with these CNs (none, one or several), signed by ``issuer``."""
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'backstage-k8s')]
        attributes += [x509.NameAttribute(NameOID.COMMON_NAME, name) for name in common_names]
        start = self.now + valid_from_days * DAY
        end = not_after or start + valid_for_days * DAY
        extensions = [
            x509.BasicConstraints(ca=False, path_length=None),
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
        ]
        return self._build(x509.Name(attributes), issuer, self._key('ec'), start, end, extensions)

    # CAs the tests share, made once on first use.
    @functools.cached_property
    def main_ca(self) -> Issued:
        return self.ca()

    @functools.cached_property
    def rsa_ca(self) -> Issued:
        return self.ca('rsa CA', key='rsa')

    @functools.cached_property
    def other_ca(self) -> Issued:
        return self.ca('other CA')

    @functools.cached_property
    def impostor_ca(self) -> Issued:
        """Same name as the main CA, another key."""
        return self.ca(CA_NAME)

    @functools.cached_property
    def not_a_ca(self) -> Issued:
        return self.ca('just a leaf', is_ca=False)

    @functools.cached_property
    def no_constraints_ca(self) -> Issued:
        return self.ca('no constraints', is_ca=None)

    @functools.cached_property
    def no_cert_sign_ca(self) -> Issued:
        return self.ca('no cert sign', key_cert_sign=False)

    @functools.cached_property
    def expired_ca(self) -> Issued:
        return self.ca('expired CA', valid_from_days=-10, valid_for_days=9.5)


@pytest.fixture(scope='session')
def now() -> datetime.datetime:
    # Whole seconds: certificate times have no fractions.
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope='session')
def pki(now: datetime.datetime) -> Pki:
    return Pki(now)


@pytest.fixture(scope='session')
def ca(pki: Pki) -> Issued:
    return pki.main_ca
