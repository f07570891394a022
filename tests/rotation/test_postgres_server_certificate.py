"""postgres_server_certificate against a real PostgreSQL 15 with TLS and cert authentication:
it reports the certificate the server presents, makes the server reload (and so present a
rotated certificate) over a client-certificate login, and refuses what PostgreSQL or TLS refuse."""

from __future__ import annotations

import datetime
import glob
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.backstage.k8s.plugins.module_utils import _postgres_tls
from ansible_collections.backstage.k8s.plugins.module_utils._postgres_tls import PostgresTlsError, connect_and_query

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "postgres.backstage.svc.cluster.local"
# .../ansible_collections/backstage/k8s/plugins/module_utils/_postgres_tls.py -> the directory holding
# ansible_collections (the virtualenv's link to this checkout), named explicitly so that no other
# installed copy of the collection is used.
COLLECTIONS_PATH = Path(_postgres_tls.__file__).parents[5]


class Issuer:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, server: bool) -> tuple[x509.Certificate, str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=45))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                  else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return cert, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


class Server:
    """PostgreSQL 15 in a temporary directory: TLS on, `cert` for postgres, everything else rejected."""

    def __init__(self, root: Path, ca: Issuer) -> None:
        self.root, self.ca = root, ca
        self.port = _free_port()
        self.serial = 0

    def install_certificate(self) -> int:
        """Write a new server certificate the way the kubelet updates a Secret volume: new files, then a rename."""
        cert, cert_pem, key_pem = self.ca.issue("postgres", server=True)
        for name, content, mode in (("tls.crt", cert_pem, 0o644), ("tls.key", key_pem, 0o600)):
            staging = self.root / f".{name}.new"
            staging.write_text(content)
            staging.chmod(mode)
            _own(staging)
            staging.replace(self.root / name)
        self.serial = cert.serial_number
        return self.serial


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _own(path: Path) -> None:
    if os.getuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else list(argv)


@pytest.fixture(scope="module")
def ca() -> Issuer:
    return Issuer("rotation test CA")


@pytest.fixture(scope="module")
def server(ca: Issuer) -> Iterator[Server]:
    initdb = sorted(glob.glob("/usr/lib/postgresql/15/bin/initdb"))
    if not initdb:
        pytest.fail("PostgreSQL 15 is not installed: run tests/rotation/setup-host.sh")
    bindir = Path(initdb[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="pgtls-", dir="/tmp"))
    _own(root)
    srv = Server(root, ca)
    (root / "ca.crt").write_text(ca.pem)
    _own(root / "ca.crt")
    srv.install_certificate()
    subprocess.run(_as_postgres(str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust"),
                   check=True, capture_output=True)
    with open(root / "data" / "postgresql.conf", "a") as conf:
        conf.write(f"port = {srv.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                   f"ssl = on\nssl_cert_file = '{root}/tls.crt'\nssl_key_file = '{root}/tls.key'\n"
                   f"ssl_ca_file = '{root}/ca.crt'\n")
    (root / "data" / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all postgres all cert\nhost all all all reject\n")
    subprocess.run(_as_postgres(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"),
                                "-w", "start"), check=True, capture_output=True)
    try:
        yield srv
    finally:
        subprocess.run(_as_postgres(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"),
                       capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def client(ca: Issuer) -> tuple[str, str]:
    cert_pem, key_pem = ca.issue("postgres", server=False)[1:]
    return cert_pem, key_pem


def test_the_presented_certificate_is_described(server: Server, ca: Issuer) -> None:
    result = connect_and_query("127.0.0.1", server.port, SERVER_NAME, ca.pem)
    described = result["server_certificate"]
    assert described["serial_number"] == server.serial
    assert described["common_name"] == "postgres"
    assert described["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert result["rows"] is None


def test_reload_makes_the_server_present_its_rotated_certificate(
        server: Server, ca: Issuer, client: tuple[str, str]) -> None:
    old = server.serial
    # A connection open across the rotation keeps working.
    new = server.install_certificate()
    assert connect_and_query("127.0.0.1", server.port, SERVER_NAME, ca.pem)["server_certificate"]["serial_number"] == old
    result = connect_and_query("127.0.0.1", server.port, SERVER_NAME, ca.pem, *client, user="postgres",
                               query="SELECT pg_reload_conf()")
    assert result["rows"] == [["t"]]
    deadline = time.monotonic() + 10
    while True:
        presented = connect_and_query("127.0.0.1", server.port, SERVER_NAME, ca.pem)["server_certificate"]
        if presented["serial_number"] == new or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert presented["serial_number"] == new


def test_a_query_runs_as_the_certificate_user(server: Server, ca: Issuer, client: tuple[str, str]) -> None:
    rows = connect_and_query("127.0.0.1", server.port, SERVER_NAME, ca.pem, *client,
                             query="SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")["rows"]
    assert rows == [["postgres", "t"]]


REFUSALS = [
    ("wrong-server-name", {"server_name": "elsewhere.example"}, "does not verify for elsewhere.example"),
    ("other-ca", {"other_ca": True}, "does not verify"),
    ("user-not-in-cn", {"user": "backstage"}, "refused backstage"),
    ("client-cert-of-other-ca", {"foreign_client": True}, "unknown ca"),
    ("nothing-listens", {"port": 1}, "cannot connect"),
    ("bad-query", {"query": "SELECT nope"}, "failed"),
]


@pytest.mark.parametrize(("case", "change", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_tls_or_postgresql_refuses_fails_with_a_message(
        server: Server, ca: Issuer, client: tuple[str, str], case: str, change: dict, message: str) -> None:
    cert_pem, key_pem = client
    if change.get("foreign_client"):
        cert_pem, key_pem = Issuer("foreign CA").issue("postgres", server=False)[1:]
    with pytest.raises(PostgresTlsError, match=message) as raised:
        connect_and_query(
            "127.0.0.1", change.get("port", server.port), change.get("server_name", SERVER_NAME),
            Issuer("other CA").pem if change.get("other_ca") else ca.pem, cert_pem, key_pem,
            user=change.get("user", "postgres"), query=change.get("query", "SELECT 1"), timeout=5,
        )
    assert "PRIVATE KEY" not in str(raised.value)


def test_a_close_without_a_reason_after_the_handshake_is_tried_again_and_explained(
        ca: Issuer, client: tuple[str, str], tmp_path: Path) -> None:
    # A TLS 1.3 server that takes the client certificate and closes without an alert: what the
    # client sees when a refusal's alert loses the race with its first message.
    cert_pem, key_pem = ca.issue("postgres", server=True)[1:]
    (tmp_path / "tls.crt").write_text(cert_pem)
    (tmp_path / "tls.key").write_text(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca.pem)
    listener = socket.create_server(("127.0.0.1", 0))
    handshakes = []

    def serve() -> None:
        while True:
            try:
                conn = listener.accept()[0]
            except OSError:
                return
            with conn:
                conn.recv(8)
                conn.sendall(b"S")
                tls = context.wrap_socket(conn, server_side=True)
                handshakes.append(tls.getpeercert() is not None)
                os.close(tls.detach())  # the TCP connection ends without close_notify or an alert

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(PostgresTlsError, match="closed the connection after the TLS handshake, "
                           "before postgres was logged in, 3 times without a reason") as raised:
            connect_and_query("127.0.0.1", listener.getsockname()[1], SERVER_NAME, ca.pem, *client, timeout=5)
    finally:
        listener.close()
    assert handshakes == [True, True, True]
    assert "PRIVATE KEY" not in str(raised.value)


def test_a_server_vouched_for_only_by_the_system_roots_is_refused(
        server: Server, ca: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's CA as the system's trust store (OpenSSL reads SSL_CERT_FILE for its default
    # paths), another CA as the one given: only the given CA may vouch for the server.
    system_roots = tmp_path / "system-roots.pem"
    system_roots.write_text(ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(system_roots))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(PostgresTlsError, match="does not verify"):
        connect_and_query("127.0.0.1", server.port, SERVER_NAME, Issuer("other CA").pem, timeout=5)


def test_the_module_reloads_and_reports_the_certificate(
        server: Server, ca: Issuer, client: tuple[str, str], tmp_path: Path) -> None:
    """The module as Ansible runs it, from the collection the virtualenv links."""
    playbook = tmp_path / "reload.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"backstage.k8s.postgres_server_certificate": {
                "host": "127.0.0.1", "port": server.port, "server_name": SERVER_NAME, "ca_certificate": ca.pem,
                "client_certificate": client[0], "client_key": client[1], "reload": True},
             "register": "reloaded"},
            {"ansible.builtin.copy": {"content": "{{ reloaded | to_json }}", "dest": str(tmp_path / "out.json"),
                                      "mode": "0600"}},
        ],
    }]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH)}
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook)],
                            capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert client[1].splitlines()[1] not in result.stdout
    reported = json.loads((tmp_path / "out.json").read_text())
    assert reported["changed"] is True and reported["reloaded"] is True
    assert reported["serial_number"] == server.serial
