# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The pki role keeps a leaf certificate that is as wanted and renews one for each reason it
reports, on real certificates, keys and CRLs."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from typing import Any, Dict, Optional, Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import format_time
from ansible_collections.backstage.k8s.plugins.module_utils._crl import sign
from ansible_collections.backstage.k8s.plugins.module_utils._leaf_renewal import leaf_renewal

DAY = datetime.timedelta(days=1)
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
SANS = ('DNS:postgres', 'DNS:postgres.demo.svc', 'IP:fd00::a')
SERVER = {'secret_name': 'postgres-server-tls', 'component': 'database', 'common_name': 'postgres',
          'subject_alt_names': list(SANS), 'extended_key_usage': ['serverAuth'], 'database_user': '', 'crl': True}
CLIENT = {'secret_name': 'backstage-postgres-client-tls', 'component': 'database-client', 'common_name': 'postgres',
          'subject_alt_names': [], 'extended_key_usage': ['clientAuth'], 'database_user': 'postgres', 'crl': False}


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode('ascii')


def key_pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode('ascii')


def make_ca(name: str) -> Dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW - DAY).not_valid_after(NOW + 3650 * DAY)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .sign(key, hashes.SHA256()))
    return {'certificate': pem(certificate), 'key': key_pem(key), 'cert': certificate, 'private': key}


CA = make_ca('backstage-k8s CA')
OLD_CA = make_ca('backstage-k8s old CA')


def make_leaf(issuer: Dict[str, Any], common_name: str = 'postgres', sans: Sequence[str] = SANS,
              age_days: float = 1, lifetime_days: float = 45) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(issuer['cert'].subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - age_days * DAY).not_valid_after(NOW - age_days * DAY + lifetime_days * DAY)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer['private'].public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(san[3:])) if san.startswith('IP:') else x509.DNSName(san[4:])
             for san in sans]), critical=False)
    return pem(builder.sign(issuer['private'], hashes.SHA256())), key_pem(key)


def secret(certificate: str = '', key: str = '', ca: str = '', crl: str = '') -> Dict[str, Any]:
    data = {name: base64.b64encode(value.encode()).decode() for name, value in
            (('tls.crt', certificate), ('tls.key', key), ('ca.crt', ca), ('ca.crl', crl)) if value}
    return {'kind': 'Secret', 'metadata': {'name': 'x'}, 'data': data}


def crl_for(ca: Dict[str, Any], next_update_days: float = 45, revoked: Optional[list] = None) -> str:
    return sign(ca['certificate'], ca['key'], revoked or [], format_time(NOW + next_update_days * DAY), now=NOW)


def decide(leaf: Dict[str, Any], stored: Dict[str, Any], ca: Optional[Dict[str, Any]] = None, ca_previous: Optional[Dict] = None,
           phase: str = '', ca_new: bool = False, bundle: Optional[str] = None, force: bool = False,
           revoke: Optional[list] = None) -> Dict[str, Any]:
    return leaf_renewal(leaf, stored, ca or CA, ca_previous or {}, phase, ca_new,
                        CA['certificate'] if bundle is None else bundle, force, 45, 30, revoke or [], now=NOW)


def kept_server(**changes: Any) -> Dict[str, Any]:
    certificate, key = make_leaf(CA, **changes)
    return secret(certificate, key, CA['certificate'], crl_for(CA, 46))


def test_a_certificate_as_wanted_is_kept_with_what_its_secret_holds() -> None:
    certificate, key = make_leaf(CA, sans=[])
    state = decide(CLIENT, secret(certificate, key, CA['certificate']))
    assert state['reasons'] == []
    assert state['current'] == {'certificate': certificate, 'key': key, 'ca': CA['certificate'], 'crl': ''}
    assert state['issuer_previous'] is False
    server = decide(SERVER, kept_server())
    assert server['reasons'] == [] and server['crl']['usable']


@pytest.mark.parametrize(('leaf', 'stored', 'reasons'), [
    (CLIENT, {}, ['there is no certificate yet']),
    (CLIENT, secret('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'k', CA['certificate']),
     ['the certificate cannot be read']),
    (CLIENT, secret(make_leaf(CA, sans=[])[0], make_leaf(CA, sans=[])[1], CA['certificate']),
     ['the key does not match the certificate']),
    (CLIENT, secret(*make_leaf(OLD_CA, sans=[]), CA['certificate']), ['it was not issued by the current CA']),
    (CLIENT, secret(*make_leaf(CA, sans=[]), OLD_CA['certificate']), ["its ca.crt is not the CA's trust bundle"]),
    (CLIENT, secret(*make_leaf(CA, common_name='Postgres', sans=[]), CA['certificate']),
     ['its CN is not the wanted one']),
    (SERVER, kept_server(sans=SANS[:2]), ['its SANs are not the wanted ones']),
    (SERVER, kept_server(lifetime_days=90), ['its lifetime is not pki_leaf_ttl_days', 'its CRL expires before it does']),
    (CLIENT, secret(*make_leaf(CA, sans=[], age_days=30), CA['certificate']),
     ['it is older than pki_leaf_renew_after_days']),
    (SERVER, secret(*make_leaf(CA), CA['certificate']), ['its CRL is missing or not usable']),
    (SERVER, secret(*make_leaf(CA), CA['certificate'], crl_for(OLD_CA)), ['its CRL is missing or not usable']),
    (SERVER, secret(*make_leaf(CA), CA['certificate'], crl_for(CA, 10)), ['its CRL expires before it does']),
], ids=['missing', 'unreadable', 'other-key', 'other-ca', 'other-bundle', 'cn-case', 'sans', 'lifetime', 'age',
        'no-crl', 'crl-of-other-ca', 'crl-expires-first'])
def test_each_reason_to_renew_is_reported(leaf: Dict[str, Any], stored: Dict[str, Any], reasons: list) -> None:
    assert decide(leaf, stored)['reasons'] == reasons


def test_an_uncompressed_ip_address_is_the_same_san() -> None:
    leaf = dict(SERVER, subject_alt_names=list(SANS[:2]) + ['IP:fd00:0:0:0:0:0:0:a'])
    assert decide(leaf, kept_server())['reasons'] == []


def test_force_a_new_ca_and_a_serial_to_revoke_renew() -> None:
    assert decide(SERVER, kept_server(), force=True)['reasons'] == ['pki_force_rotation is set']
    new_ca = decide(SERVER, kept_server(), ca_new=True, bundle=make_ca('new')['certificate'])
    assert new_ca['reasons'][0] == 'the CA is new'
    assert 'it was not issued by the current CA' not in new_ca['reasons']
    assert decide(SERVER, kept_server(), revoke=['12345'])['reasons'] == ['a client certificate is to be revoked']
    revoked = secret(*make_leaf(CA), CA['certificate'], crl_for(CA, 46, [{'serial_number': 12345}]))
    assert decide(SERVER, revoked, revoke=[12345])['reasons'] == []


def test_during_a_rollover_a_leaf_of_the_old_ca_is_kept_while_the_phase_holds() -> None:
    bundle = CA['certificate'].strip() + '\n' + OLD_CA['certificate'].strip() + '\n'
    stored = secret(*make_leaf(OLD_CA, sans=[]), bundle)
    held = decide(CLIENT, stored, ca_previous=OLD_CA, phase='hold', bundle=bundle)
    assert held['reasons'] == [] and held['issuer_previous'] is True
    for phase in ('start', 'trust'):
        assert decide(CLIENT, stored, ca_previous=OLD_CA, phase=phase, bundle=bundle)['issuer_previous'] is True
    # Once the rollover is done the old CA's leaf is renewed by the new CA.
    done = decide(CLIENT, stored, phase='', bundle=CA['certificate'])
    assert done['issuer_previous'] is False
    assert done['reasons'] == ['it was not issued by the current CA', "its ca.crt is not the CA's trust bundle"]
