"""The database modes on one PostgreSQL, in order: the scenario's superuser mode; the switch of this
existing deployment to least_privilege (the database user backstage, a role with LOGIN CREATEDB
only, given the databases the superuser made); and the switch back.

Connections are psql from pods inside the cluster with the client certificates, as the backend
makes them; what only the superuser can see is read in the PostgreSQL container over its socket.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from typing import Any, Iterator

import pytest

from conftest import (
    CLIENT_SECRET, KUBECTL, NAMESPACE, STATEFULSET, _client_pod_manifest, conninfo, kubectl, psql, run_converge,
    secret_data,
)
from testcluster import postgres_query

USER = "backstage"
LEAST_PRIVILEGE = {"postgres_database_mode": "least_privilege", "pki_database_user": USER,
                   "postgres_database_user": USER}
# A database and its objects made by the superuser before the switch, as a backend that ran in
# superuser mode leaves them.
PLUGIN_DATABASE = "backstage_plugin_lpcheck"
BACKEND_POD = "tls-client-backend"
BACKEND_SECRET = "tls-client-backend"


def socket_sql(sql: str) -> str:
    """sql run in the PostgreSQL container as initdb's superuser over the Unix socket."""
    return kubectl("-n", NAMESPACE, "exec", f"{STATEFULSET}-0", "-c", "postgres", "--",
                   "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-XAt", "-v", "ON_ERROR_STOP=1",
                   "-c", sql).stdout.strip()


def test_no_superuser_has_a_password_in_superuser_mode() -> None:
    assert socket_sql("SELECT count(*) FROM pg_authid WHERE rolsuper") != "0"
    assert socket_sql("SELECT string_agg(rolname, ',') FROM pg_authid WHERE rolpassword IS NOT NULL") == ""


def backend_pod(postgres_image: str) -> None:
    """A psql pod with the client certificate the pki role issued (the backend's)."""
    client = secret_data(CLIENT_SECRET)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": BACKEND_SECRET, "namespace": NAMESPACE},
              "data": {"right.crt": base64.b64encode(client["tls.crt"]).decode(),
                       "right.key": base64.b64encode(client["tls.key"]).decode(),
                       "ca.crt": base64.b64encode(client["ca.crt"]).decode()}}
    pod = _client_pod_manifest(postgres_image)
    pod["metadata"]["name"] = BACKEND_POD
    pod["spec"]["volumes"][0]["secret"]["secretName"] = BACKEND_SECRET
    kubectl("-n", NAMESPACE, "delete", "pod", BACKEND_POD, "--ignore-not-found", "--wait=true")
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-f", "-", input=json.dumps(pod))
    kubectl("-n", NAMESPACE, "wait", "pod", BACKEND_POD, "--for=condition=Ready", "--timeout=120s", timeout=150)


@pytest.fixture(scope="module")
def least_privilege(host: Any, client_pod: str, postgres_image: str) -> Iterator[str]:
    """The deployment switched to least_privilege, with a pod holding the backend's new certificate;
    the pod client_pod keeps the superuser's (CN postgres, from the same CA)."""
    made = psql(host, client_pod, conninfo(), f"CREATE DATABASE {PLUGIN_DATABASE}")
    assert made.rc == 0, made.stderr
    made = psql(host, client_pod, conninfo(dbname=PLUGIN_DATABASE),
                "CREATE TABLE entities (id serial PRIMARY KEY, name text); INSERT INTO entities (name) VALUES ('one')")
    assert made.rc == 0, made.stderr
    switched = run_converge(LEAST_PRIVILEGE)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    backend_pod(postgres_image)
    yield BACKEND_POD
    kubectl("-n", NAMESPACE, "delete", "pod", BACKEND_POD, "--ignore-not-found", "--wait=false", check=False)
    kubectl("-n", NAMESPACE, "delete", "secret", BACKEND_SECRET, "--ignore-not-found", check=False)


def test_the_backend_logs_in_as_a_role_that_may_only_log_in_and_create_databases(
        host: Any, least_privilege: str) -> None:
    result = psql(host, least_privilege, conninfo(user=USER),
                  "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
                  " FROM pg_roles WHERE rolname = current_user")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{USER}|f|t|f|f|f"
    created = psql(host, least_privilege, conninfo(user=USER), "CREATE DATABASE backstage_plugin_lpnew")
    assert created.rc == 0, created.stderr


def test_the_databases_the_superuser_made_are_the_backends_with_their_tables(host: Any, least_privilege: str) -> None:
    # A migration needs the table's owner: ALTER TABLE, then a write.
    result = psql(host, least_privilege, conninfo(user=USER, dbname=PLUGIN_DATABASE),
                  "ALTER TABLE entities ADD COLUMN kind text; INSERT INTO entities (name) VALUES ('two'); "
                  "SELECT pg_get_userbyid(datdba) || ',' || (SELECT count(*) FROM entities) FROM pg_database"
                  " WHERE datname = current_database()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{USER},2"


def test_the_backend_role_cannot_run_a_program_with_copy(host: Any, least_privilege: str) -> None:
    result = psql(host, least_privilege, conninfo(user=USER, dbname=PLUGIN_DATABASE),
                  "COPY entities (name) FROM PROGRAM 'id'")
    assert result.rc != 0, f"COPY FROM PROGRAM ran:\n{result.stdout}"
    assert re.search(r"permission denied|must be superuser", result.stderr), result.stderr


def test_the_superuser_cannot_log_in_over_the_network(host: Any, client_pod: str, least_privilege: str) -> None:
    # client_pod's certificate: CN postgres, issued by the same CA (the superuser mode's).
    result = psql(host, client_pod, conninfo(), "SELECT 1")
    assert result.rc != 0, f"the superuser got in:\n{result.stdout}"
    assert re.search(r'pg_hba\.conf rejects connection .*user "postgres"', result.stderr), result.stderr
    assert socket_sql("SELECT string_agg(rolname, ',') FROM pg_authid WHERE rolpassword IS NOT NULL") == ""


def test_a_second_run_in_least_privilege_changes_nothing(least_privilege: str) -> None:
    again = run_converge(LEAST_PRIVILEGE)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]


def test_switching_back_makes_the_database_user_postgres_a_superuser_again(least_privilege: str) -> None:
    back = run_converge({})
    assert back.returncode == 0, back.stdout + back.stderr
    rows = postgres_query(KUBECTL.in_namespace(NAMESPACE),
                          f"SELECT current_user, rolsuper, (SELECT count(*) FROM pg_database WHERE datname = "
                          f"'{PLUGIN_DATABASE}') FROM pg_roles WHERE rolname = current_user", database="postgres")["rows"]
    assert rows == [["postgres", "t", "1"]]
    for database in (PLUGIN_DATABASE, "backstage_plugin_lpnew"):
        socket_sql(f"DROP DATABASE IF EXISTS {shlex.quote(database)}")
