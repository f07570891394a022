"""Who PostgreSQL lets in: real psql connections from a pod inside the cluster.

Only the right client certificate (CN = the database user, signed by the scenario's CA), over
TLS, with a server name that is in the server certificate, gets a session; each other case is
refused, and for the reason the case is about.
"""

from __future__ import annotations

import re
import secrets
import shlex
from typing import Any, NamedTuple

import pytest

from conftest import KUBECTL, NAMESPACE, SERVICE, STATEFULSET, conninfo, psql


class Case(NamedTuple):
    id: str
    overrides: dict[str, str]
    # A regular expression the refusal must match (what psql prints on stderr).
    refused_because: str


REFUSED = [
    Case(
        "no-tls-is-refused",
        {"sslmode": "disable"},
        r'pg_hba\.conf rejects connection .*no encryption',
    ),
    Case(
        "tls-without-client-certificate-is-refused",
        {"sslcert": "/nonexistent.crt", "sslkey": "/nonexistent.key"},
        r"connection requires a valid client certificate",
    ),
    Case(
        "certificate-from-another-ca-is-refused",
        {"sslcert": "/certs/other-ca.crt", "sslkey": "/certs/other-ca.key"},
        r"unknown ca|certificate verify failed",
    ),
    Case(
        "certificate-with-another-cn-is-refused",
        {"sslcert": "/certs/wrong-cn.crt", "sslkey": "/certs/wrong-cn.key"},
        r'certificate authentication failed for user "postgres"',
    ),
    Case(
        "expired-client-certificate-is-refused",
        {"sslcert": "/certs/expired.crt", "sslkey": "/certs/expired.key"},
        r"certificate expired",
    ),
    Case(
        "wrong-server-hostname-fails-verify-full",
        {"host": f"{STATEFULSET}-0.{STATEFULSET}-headless.{NAMESPACE}.svc"},
        r"server certificate for .* does not match host name",
    ),
    Case(
        "another-user-with-the-right-certificate-is-refused",
        {"user": "backstage"},
        r'pg_hba\.conf rejects connection for host .*user "backstage"',
    ),
]


def test_right_client_certificate_with_verify_full_connects_and_creates_a_database(host: Any, client_pod: str) -> None:
    database = f"verify_{secrets.token_hex(4)}"
    result = psql(
        host, client_pod, conninfo(),
        f"CREATE DATABASE {database}",
    )
    assert result.rc == 0, result.stderr
    check = psql(
        host, client_pod, conninfo(dbname=database),
        "SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    assert check.rc == 0, check.stderr
    user, ssl, version = check.stdout.strip().split("|")
    assert (user, ssl) == ("postgres", "t")
    assert version == "TLSv1.3"
    psql(host, client_pod, conninfo(), f"DROP DATABASE {database}")


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_connection_is_refused(host: Any, client_pod: str, case: Case) -> None:
    result = psql(host, client_pod, conninfo(**case.overrides), "SELECT 1")
    assert result.rc != 0, f"{case.id}: connected, but should have been refused:\n{result.stdout}"
    assert re.search(case.refused_because, result.stderr), (
        f"{case.id}: refused, but not for the expected reason /{case.refused_because}/:\n{result.stderr}"
    )


def test_tls_older_than_the_minimum_is_refused_by_the_server(host: Any, client_pod: str) -> None:
    # libpq will not offer TLS 1.1 at all, so ask with openssl, allowing it on the client side:
    # the refusal (alert 70, protocol version) then comes from the server.
    result = host.run(shlex.join([
        *KUBECTL.argv(), "-n", NAMESPACE, "exec", client_pod, "--", "sh", "-c",
        f"echo | openssl s_client -connect {SERVICE}.{NAMESPACE}.svc:5432 -starttls postgres "
        "-tls1_1 -cipher DEFAULT@SECLEVEL=0 2>&1",
    ]))
    assert "alert protocol version" in result.stdout, result.stdout
    assert "no peer certificate available" in result.stdout, "the handshake went through"


def test_tls_1_2_is_refused_by_default_even_with_the_right_certificate(host: Any, client_pod: str) -> None:
    result = psql(
        host, client_pod, conninfo(ssl_max_protocol_version="TLSv1.2"),
        "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    assert result.rc != 0, f"connected over TLS 1.2:\n{result.stdout}"
    assert re.search(r"protocol version|unsupported protocol", result.stderr), result.stderr
