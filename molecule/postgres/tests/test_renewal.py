"""Leaf certificates are renewed by age, and PostgreSQL restarts only when it does not run with
the certificate in its Secret.

The server certificate in its Secret is swapped for one of the same names signed by the same CA
but issued some days ago; converge then runs again, as the next deploy would.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509

from conftest import (
    SERVER_SECRET,
    STATEFULSET,
    conninfo,
    pod_uid,
    psql,
    put_tls_secret,
    run_converge,
    secret_data,
    wait_statefulset_ready,
)
from testpki import make_leaf_like

# The roles' defaults: 45-day leaves renewed once 30 days old.
TTL_DAYS = 45
RENEW_AFTER_DAYS = 30


def _install_server_certificate_aged(days: int, scenario_ca: tuple[x509.Certificate, Any]) -> bytes:
    ca_cert, ca_key = scenario_ca
    current = secret_data(SERVER_SECRET)
    issued = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    material = make_leaf_like(
        current["tls.crt"], ca_cert, ca_key, issued, issued + datetime.timedelta(days=TTL_DAYS)
    )
    put_tls_secret(SERVER_SECRET, material, current["ca.crt"])
    return material.certificate


def _converge(postgres_image: str) -> str:
    # Verbose, so that a key a task forgot to hide would show.
    result = run_converge({"postgres_image": postgres_image}, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_server_certificate_younger_than_renew_after_is_kept_and_loaded_once(
    scenario_ca: tuple[x509.Certificate, Any], postgres_image: str
) -> None:
    installed = _install_server_certificate_aged(RENEW_AFTER_DAYS - 1, scenario_ca)
    uid_before = pod_uid(f"{STATEFULSET}-0")

    _converge(postgres_image)

    assert secret_data(SERVER_SECRET)["tls.crt"] == installed
    # PostgreSQL did not start with the certificate put in its Secret: converge restarts it once
    # to load it (restarts follow what runs against the Secret, not what the run issued).
    wait_statefulset_ready()
    uid_loaded = pod_uid(f"{STATEFULSET}-0")
    assert uid_loaded != uid_before

    _converge(postgres_image)

    assert secret_data(SERVER_SECRET)["tls.crt"] == installed
    assert pod_uid(f"{STATEFULSET}-0") == uid_loaded


def test_a_server_certificate_older_than_renew_after_is_renewed_and_postgres_restarted(
    host: Any, client_pod: str, scenario_ca: tuple[x509.Certificate, Any], postgres_image: str
) -> None:
    installed = _install_server_certificate_aged(RENEW_AFTER_DAYS + 1, scenario_ca)
    uid_before = pod_uid(f"{STATEFULSET}-0")

    output = _converge(postgres_image)

    renewed = secret_data(SERVER_SECRET)["tls.crt"]
    assert renewed != installed
    certificate = x509.load_pem_x509_certificate(renewed)
    age = datetime.datetime.now(datetime.timezone.utc) - certificate.not_valid_before_utc
    assert age < datetime.timedelta(hours=1)
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(days=TTL_DAYS)
    assert "it is older than pki_leaf_renew_after_days" in output
    assert "PRIVATE KEY" not in output, "a private key appeared in the output"
    wait_statefulset_ready()
    assert pod_uid(f"{STATEFULSET}-0") != uid_before, "PostgreSQL was not restarted on its new certificate"
    result = psql(host, client_pod, conninfo(), "SELECT 1")
    assert result.rc == 0, result.stderr
