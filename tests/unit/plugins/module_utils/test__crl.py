# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The CRL the pki role signs makes OpenSSL (as PostgreSQL configures it: CRL_CHECK and
CRL_CHECK_ALL) refuse exactly the revoked client certificates, and reads back as written."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import tempfile
import threading
from typing import List, Optional

import pytest
from cryptography import x509

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import format_time
from ansible_collections.backstage.k8s.plugins.module_utils._crl import CrlError, read, sign

DAY = datetime.timedelta(days=1)


def later(now: datetime.datetime, days: float = 45) -> str:
    return format_time(now + days * DAY)


def handshake(ca_pem: str, crl_pem: Optional[str], server, client) -> Optional[str]:
    """A TLS 1.3 handshake where the server verifies the client certificate against the CA and the
    CRL as PostgreSQL does; None when the client certificate is accepted, else OpenSSL's reason."""
    with tempfile.TemporaryDirectory() as directory:
        paths = {}
        for name, content in (('ca', ca_pem + (crl_pem or '')), ('server.crt', server.pem),
                              ('server.key', server.key_pem), ('client.crt', client.pem),
                              ('client.key', client.key_pem)):
            paths[name] = os.path.join(directory, name)
            with open(paths[name], 'w') as handle:
                handle.write(content)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(paths['server.crt'], paths['server.key'])
        server_context.load_verify_locations(paths['ca'])
        server_context.verify_mode = ssl.CERT_REQUIRED
        if crl_pem is not None:
            server_context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_CRL_CHECK_CHAIN
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        client_context.load_cert_chain(paths['client.crt'], paths['client.key'])
        left, right = socket.socketpair()
        outcome: List[Optional[str]] = []

        def serve() -> None:
            try:
                with server_context.wrap_socket(left, server_side=True) as tls:
                    tls.recv(1)
                    outcome.append(None)
            except (ssl.SSLError, OSError) as exc:
                outcome.append(getattr(exc, 'verify_message', None) or str(exc))

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with client_context.wrap_socket(right) as tls:
                tls.sendall(b'x')
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
        thread.join(10)
        right.close()
        return outcome[0]


@pytest.fixture(scope='module')
def server(pki, ca):
    return pki.client(ca, ['postgres.example'])


def test_a_revoked_client_certificate_is_refused_and_a_new_one_accepted(pki, ca, now, server) -> None:
    old, new = pki.client(ca), pki.client(ca)
    crl = sign(ca.pem, ca.key_pem, [{'serial_number': old.certificate.serial_number}], later(now))
    assert handshake(ca.pem, None, server, old) is None, 'without the CRL the old certificate is accepted'
    assert 'revoked' in (handshake(ca.pem, crl, server, old) or '')
    assert handshake(ca.pem, crl, server, new) is None


def test_a_crl_past_its_next_update_refuses_every_client_certificate(pki, ca, now, server) -> None:
    # Why the CRL must be re-issued before its next update: OpenSSL refuses everything after it.
    crl = sign(ca.pem, ca.key_pem, [], format_time(now - DAY + DAY / 24), now=now - 2 * DAY)
    assert 'expired' in (handshake(ca.pem, crl, server, pki.client(ca)) or '')


def test_read_gives_back_the_revoked_serials_and_next_update(ca, now) -> None:
    crl = sign(ca.pem, ca.key_pem, [{'serial_number': 7, 'revocation_date': format_time(now - DAY)},
                                    '12', {'serial_number': 7}], later(now), now=now)
    info = read(crl, ca.pem)
    assert info == {'usable': True, 'problem': '', 'next_update': later(now),
                    'revoked': [{'serial_number': 7, 'revocation_date': format_time(now - DAY)},
                                {'serial_number': 12, 'revocation_date': format_time(now)}]}
    parsed = x509.load_pem_x509_crl(crl.encode())
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == int(now.timestamp())


@pytest.mark.parametrize(('crl', 'problem'), [
    ('', 'there is no CRL'),
    ('   \n', 'there is no CRL'),
    ('-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n', 'the CRL cannot be read'),
], ids=['empty', 'blank', 'garbage'])
def test_read_says_why_a_crl_is_not_usable(ca, crl: str, problem: str) -> None:
    info = read(crl, ca.pem)
    assert not info['usable'] and info['problem'].startswith(problem)


def test_a_crl_signed_by_another_ca_with_the_same_name_is_not_usable(pki, ca, now) -> None:
    impostor = pki.impostor_ca
    crl = sign(impostor.pem, impostor.key_pem, [], later(now))
    info = read(crl, ca.pem)
    assert not info['usable'] and info['problem'].startswith('the CRL is not signed by the CA')


@pytest.mark.parametrize(('revoked', 'next_update', 'message'), [
    ([{'serial_number': 'x'}], None, 'is not a decimal integer'),
    (['12a'], None, 'is not a decimal integer'),
    ([{'serial_number': 0}], None, 'must be positive'),
    ([{'serial': 1}], None, 'needs a serial_number'),
    ([{'serial_number': 1, 'revocation_date': '2026-01-01'}], None, 'is not a time'),
    ([], '20200101000000Z', 'is not in the future'),
], ids=['serial-not-a-number', 'bare-serial-not-a-number', 'serial-zero', 'no-serial', 'bad-date', 'next-update-past'])
def test_bad_input_is_refused_with_a_reason(ca, now, revoked, next_update, message) -> None:
    with pytest.raises(CrlError, match=message):
        sign(ca.pem, ca.key_pem, revoked, next_update or later(now))


def test_a_key_that_is_not_the_cas_is_refused_without_showing_it(pki, ca, now) -> None:
    other = pki.other_ca
    with pytest.raises(CrlError) as raised:
        sign(ca.pem, other.key_pem, [], later(now))
    assert 'does not belong to the CA certificate' in str(raised.value)
    assert 'PRIVATE KEY' not in str(raised.value)
    with pytest.raises(CrlError, match='not an unencrypted PEM private key'):
        sign(ca.pem, 'not a key', [], later(now))


# -- CA rollover: PostgreSQL trusts an old and a new CA at once ---------------------------------

@pytest.fixture(scope='module')
def new_ca(pki):
    return pki.ca('backstage.k8s private CA (new)')


def test_during_a_rollover_a_client_of_the_old_ca_needs_a_crl_signed_by_the_old_ca(pki, ca, new_ca, now, server) -> None:
    """Why the old CA's key is kept until the rollover drops it: with both CAs trusted, OpenSSL
    refuses a client certificate whose issuer has no CRL, and only the old key can sign one."""
    bundle = new_ca.pem + ca.pem
    old_client, new_client = pki.client(ca), pki.client(new_ca)
    new_only = sign(new_ca.pem, new_ca.key_pem, [], later(now), now=now)
    both = new_only + sign(ca.pem, ca.key_pem, [], later(now), now=now)
    assert 'unable to get certificate CRL' in (handshake(bundle, new_only, server, old_client) or '')
    assert handshake(bundle, both, server, old_client) is None
    assert handshake(bundle, both, server, new_client) is None


def test_read_wants_a_usable_crl_from_every_ca_of_the_bundle(pki, ca, new_ca, now) -> None:
    old_crl = sign(ca.pem, ca.key_pem, ['7'], later(now, 10), now=now)
    new_crl = sign(new_ca.pem, new_ca.key_pem, ['7', '9'], later(now), now=now)
    bundle = new_ca.pem + ca.pem
    info = read(new_crl + old_crl, bundle)
    assert info['usable'] and info['problem'] == ''
    assert info['next_update'] == later(now, 10)
    assert [entry['serial_number'] for entry in info['revoked']] == [7, 9]
    # The old CA's CRL alone (the first run of a rollover): not usable, its entries kept.
    info = read(old_crl, bundle)
    assert not info['usable'] and info['problem'].startswith('the CRL is not signed by the CA')
    assert [entry['serial_number'] for entry in info['revoked']] == [7]
