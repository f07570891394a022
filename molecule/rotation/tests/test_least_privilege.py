"""The scenario runs the database in least_privilege mode (its group_vars): the backend (and the
rotation, whose tests in test_rotation.py run in this mode) logs in as a role that may only log in
and create databases; the superuser has no way in over the network.

Every query is a real connection to the scenario's PostgreSQL through its Service, verified TLS with
a client certificate, as the backend makes it.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.backstage.k8s.plugins.module_utils._postgres_tls import PostgresTlsError
from conftest import Certificates
from testcluster import CA_SECRET, Kubectl, postgres_query
from testpki import make_client_cert

DATABASE_USER = "backstage"


def test_the_backend_logs_in_as_a_role_that_may_only_log_in_and_create_databases(
        certificates: Certificates) -> None:
    rows = certificates.query(
        "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = current_user")["rows"]
    assert rows == [[DATABASE_USER, "f", "t", "f", "f", "f"]]


def test_the_backend_created_its_plugin_databases_as_that_role(certificates: Certificates) -> None:
    rows = certificates.query(
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE 'backstage\\_plugin\\_%'")["rows"]
    assert "backstage_plugin_catalog" in [row[0] for row in rows], rows
    assert {row[1] for row in rows} == {DATABASE_USER}, rows


def test_the_backend_role_cannot_run_a_program_with_copy(certificates: Certificates) -> None:
    with pytest.raises(PostgresTlsError, match="superuser|pg_execute_server_program") as refused:
        certificates.query("CREATE TEMPORARY TABLE out (line text); COPY out FROM PROGRAM 'id'")
    assert "permission denied" in str(refused.value) or "must be superuser" in str(refused.value), refused.value


def _client_secret_data(common_name: str, ca_pem: bytes, ca_key_pem: bytes) -> dict[str, str]:
    """A client certificate for common_name signed by the scenario's CA, as postgres_query takes it."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    material = make_client_cert(common_name, ca, serialization.load_pem_private_key(ca_key_pem, password=None))
    return {"tls.crt": material.certificate.decode(), "tls.key": material.key.decode(), "ca.crt": ca_pem.decode()}


def test_the_superuser_cannot_log_in_over_the_network_even_with_a_certificate_from_the_ca(
        kubectl: Kubectl) -> None:
    ca = kubectl.secret(CA_SECRET)
    superuser = _client_secret_data("postgres", ca["tls.crt"], ca["tls.key"])
    # The same certificate with the backend's CN gets in: the refusal is about the user.
    assert postgres_query(kubectl, "SELECT current_user", client=_client_secret_data(
        DATABASE_USER, ca["tls.crt"], ca["tls.key"]))["rows"] == [[DATABASE_USER]]
    with pytest.raises(PostgresTlsError, match='pg_hba.conf rejects connection .*user "postgres"'):
        postgres_query(kubectl, "SELECT 1", database="postgres", client=superuser)


def test_a_backup_runs_as_that_role_and_dumps_every_database(kubectl: Kubectl,
                                                             certificates: Certificates) -> None:
    job = "backup-least-privilege"
    kubectl.run("delete", "job", job, "--ignore-not-found", "--wait=true")
    kubectl.run("create", "job", job, "--from=cronjob/postgres-backup")
    try:
        kubectl.run("wait", f"job/{job}", "--for=condition=complete", "--timeout=300s", timeout=330)
    finally:
        log = kubectl.run("logs", f"job/{job}", "--all-containers", check=False).stdout
    databases = [name for [name] in certificates.query(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")["rows"]]
    assert f"as {DATABASE_USER} into" in log, log
    assert "wrote " in log and f": {len(databases)} databases" in log, log
    kubectl.run("delete", "job", job, "--ignore-not-found", "--wait=false", check=False)
