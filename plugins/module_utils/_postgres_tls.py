# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""A minimal PostgreSQL client over verified TLS with a client certificate.

Just enough of the frontend/backend protocol (version 3.0) to see which certificate a server
presents and to run one simple query such as ``SELECT pg_reload_conf()`` as a user that logs in
with the ``cert`` method. It needs only the standard library, so the certificate rotation job can
tell PostgreSQL to re-read its rotated files without a database driver or ``pods/exec``.

Private; used by the postgres_server_certificate module.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import socket
import ssl
import struct
import tempfile
import typing as t

SSL_REQUEST_CODE = 80877103
PROTOCOL_VERSION = 196608  # 3.0
LOGIN_ATTEMPTS = 3
REFUSAL_WAIT = 0.5  # seconds


typing_socket = t.Any


class PostgresTlsError(Exception):
    """A failure a person can act on: the message says what went wrong and where."""


class _ServerClosed(PostgresTlsError):
    pass


class _ClosedBeforeLogin(PostgresTlsError):
    pass


# How a connection the server closed without a reason shows, before the login.
_CLOSED_ERRORS = (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError, _ServerClosed)


def _recv_exactly(sock: typing_socket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = sock.recv(remaining)
        if not chunk:
            raise _ServerClosed('the server closed the connection')
        chunks.append(chunk)
        remaining -= len(chunk)
    return b''.join(chunks)


def _read_message(sock: typing_socket) -> tuple[bytes, bytes]:
    header = _recv_exactly(sock, 5)
    kind = header[:1]
    (length,) = struct.unpack('!I', header[1:])
    if length < 4 or length > 64 * 1024 * 1024:
        raise PostgresTlsError('the server sent a malformed message (length {0})'.format(length))
    return kind, _recv_exactly(sock, length - 4)


def _error_fields(payload: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse or NoticeResponse: one type byte, a C string, ..., a 0."""
    fields = {}
    for part in payload.split(b'\x00'):
        if part:
            fields[part[:1].decode('ascii', 'replace')] = part[1:].decode('utf-8', 'replace')
    return fields


def _error_message(payload: bytes) -> str:
    fields = _error_fields(payload)
    return '{0} {1}: {2}'.format(fields.get('S', 'ERROR'), fields.get('C', '?'), fields.get('M', 'unknown error'))


def _cstring(value: str) -> bytes:
    encoded = value.encode('utf-8')
    if b'\x00' in encoded:
        raise PostgresTlsError('a NUL character is not allowed in {0!r}'.format(value))
    return encoded + b'\x00'


def _tls_context(ca_certificate: str, client_certificate: str | None, client_key: str | None) -> ssl.SSLContext:
    """A context that verifies the server against the CA and its name, and presents the client
    certificate. ssl only loads a key from a file: it lives in a private temporary directory for
    the time of the call and is removed at once."""
    # Not create_default_context: it also trusts the system's roots, and only the private CA may
    # vouch for the server. PROTOCOL_TLS_CLIENT verifies the certificate and the host name.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cadata=ca_certificate)
    except (ssl.SSLError, ValueError) as exc:
        raise PostgresTlsError('the CA certificate cannot be loaded: {0}'.format(exc))
    if client_certificate:
        directory = tempfile.mkdtemp(prefix='pgtls-')
        try:
            os.chmod(directory, 0o700)
            cert_path = os.path.join(directory, 'tls.crt')
            key_path = os.path.join(directory, 'tls.key')
            for path, content in ((cert_path, client_certificate), (key_path, client_key or '')):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, 'w') as handle:
                    handle.write(content)
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise PostgresTlsError('the client certificate and key cannot be loaded (do they match?): {0}'.format(exc))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return context


def _describe_certificate(sock: ssl.SSLSocket) -> dict[str, t.Any]:
    der = sock.getpeercert(binary_form=True)
    info = sock.getpeercert() or {}
    digest = hashlib.sha256(der or b'').hexdigest()
    subject = dict(item for rdn in info.get('subject', ()) for item in rdn)
    return {
        'serial_number': int(info.get('serialNumber', '0'), 16),
        'fingerprint_sha256': ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2)),
        'common_name': subject.get('commonName'),
        'not_before': info.get('notBefore'),
        'not_after': info.get('notAfter'),
        'tls_version': sock.version(),
    }


def _simple_query(sock: ssl.SSLSocket, query: str) -> list[list[str | None]]:
    """Run one simple-protocol query and return its rows as text."""
    body = _cstring(query)
    sock.sendall(b'Q' + struct.pack('!I', len(body) + 4) + body)
    rows: list[list[str | None]] = []
    error = None
    while True:
        kind, payload = _read_message(sock)
        if kind == b'D':
            (count,) = struct.unpack('!H', payload[:2])
            offset = 2
            row: list[str | None] = []
            for dummy in range(count):
                (size,) = struct.unpack('!i', payload[offset:offset + 4])
                offset += 4
                if size < 0:
                    row.append(None)
                else:
                    row.append(payload[offset:offset + size].decode('utf-8', 'replace'))
                    offset += size
            rows.append(row)
        elif kind == b'E':
            error = _error_message(payload)
        elif kind == b'Z':
            break
    if error:
        raise PostgresTlsError('the query {0!r} failed: {1}'.format(query, error))
    return rows


def _raise_refusal(sock: ssl.SSLSocket, wait: float, timeout: float) -> None:
    """Raise the server's refusal of the client certificate if one arrives within ``wait`` seconds."""
    readable = select.select([sock], [], [], wait)[0]
    if not readable:
        return
    sock.setblocking(False)
    try:
        if not sock.recv(1):
            raise _ServerClosed('the server closed the connection')
        raise PostgresTlsError('the server sent data before the login')
    except _CLOSED_ERRORS as exc:
        raise _ClosedBeforeLogin(str(exc) or type(exc).__name__)
    except ssl.SSLWantReadError:
        pass  # a TLS record with no data for the client (a session ticket): no refusal
    finally:
        sock.settimeout(timeout)


def connect_and_query(
    host: str,
    port: int,
    server_name: str,
    ca_certificate: str,
    client_certificate: str | None = None,
    client_key: str | None = None,
    user: str = 'postgres',
    database: str | None = None,
    query: str | None = None,
    timeout: float = 10.0,
) -> dict[str, t.Any]:
    """Connect over TLS (verified against ``ca_certificate`` and ``server_name``), describe the
    server's certificate, log in as ``user`` with the client certificate and run ``query``.

    Without a client certificate it stops after the TLS handshake (the server is not logged in to).
    Returns ``{'server_certificate': {...}, 'rows': [...] or None}``.
    """
    context = _tls_context(ca_certificate, client_certificate, client_key)
    where = '{0}:{1}'.format(host, port)
    # Under TLS 1.3 the server judges the client certificate after the client has finished its
    # handshake, and its alert (unknown ca, certificate revoked) races the client's first
    # message: a server that closes with that message unread sends a reset, which can discard
    # the alert. A second attempt waits for a refusal before it sends anything.
    closed = None
    for attempt in range(LOGIN_ATTEMPTS):
        try:
            return _connect_and_query_once(context, where, host, port, server_name, client_certificate,
                                           user, database, query, timeout,
                                           refusal_wait=REFUSAL_WAIT if attempt else 0.0)
        except _ClosedBeforeLogin as exc:
            closed = exc
    raise PostgresTlsError(
        'PostgreSQL at {0} closed the connection after the TLS handshake, before {1} was logged in, '
        '{2} times without a reason ({3}): the server refuses the client certificate (signed by '
        'a CA it does not trust, revoked or expired) or closes connections'.format(
            where, user, LOGIN_ATTEMPTS, closed))


def _connect_and_query_once(context: ssl.SSLContext, where: str, host: str, port: int, server_name: str,
                            client_certificate: str | None, user: str, database: str | None,
                            query: str | None, timeout: float, refusal_wait: float) -> dict[str, t.Any]:
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise PostgresTlsError('cannot connect to PostgreSQL at {0}: {1}'.format(where, exc))
    try:
        raw.sendall(struct.pack('!II', 8, SSL_REQUEST_CODE))
        answer = _recv_exactly(raw, 1)
        if answer != b'S':
            raise PostgresTlsError('PostgreSQL at {0} refuses TLS (it answered {1!r} to SSLRequest)'.format(where, answer))
        try:
            sock = context.wrap_socket(raw, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            raise PostgresTlsError(
                'the certificate of PostgreSQL at {0} does not verify for {1} against the CA: {2}'.format(
                    where, server_name, exc.verify_message or exc))
        except ssl.SSLError as exc:
            raise PostgresTlsError('the TLS handshake with PostgreSQL at {0} failed: {1}'.format(where, exc))
        result: dict[str, t.Any] = {'server_certificate': _describe_certificate(sock), 'rows': None}
        if not client_certificate:
            return result
        if refusal_wait:
            _raise_refusal(sock, refusal_wait, timeout)
        startup = _cstring('user') + _cstring(user) + _cstring('database') + _cstring(database or user) + b'\x00'
        try:
            sock.sendall(struct.pack('!II', len(startup) + 8, PROTOCOL_VERSION) + startup)
            kind, payload = _read_message(sock)
        except _CLOSED_ERRORS as exc:
            raise _ClosedBeforeLogin(str(exc) or type(exc).__name__)
        while True:
            if kind == b'E':
                raise PostgresTlsError('PostgreSQL at {0} refused {1}: {2}'.format(where, user, _error_message(payload)))
            if kind == b'R':
                (code,) = struct.unpack('!I', payload[:4])
                if code != 0:
                    raise PostgresTlsError(
                        'PostgreSQL at {0} asks {1} for a password (authentication request {2}): '
                        'its pg_hba.conf does not use cert authentication for this user'.format(where, user, code))
            elif kind == b'Z':
                break
            kind, payload = _read_message(sock)
        if query:
            result['rows'] = _simple_query(sock, query)
        sock.sendall(b'X' + struct.pack('!I', 4))
        return result
    except OSError as exc:
        raise PostgresTlsError('the connection to PostgreSQL at {0} failed: {1}'.format(where, exc))
    finally:
        raw.close()
