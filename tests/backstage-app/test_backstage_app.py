"""The example Backstage app (examples/backstage-app), built by build.sh, against a real PostgreSQL 15.

PostgreSQL runs on loopback with TLS only and ``cert`` authentication for the
``postgres`` user (every other connection is rejected), with a throwaway CA made
here. The built backend runs with Node exactly as the backend image runs it and
must reach the database with its client certificate.
"""

from __future__ import annotations

import datetime
import functools
import glob
import http.server
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import stop_process  # noqa: E402  (tests/lib)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Chromium's screenshots of the app's pages, for a person to look at.
SCREENSHOTS = REPO / "artifacts" / "backstage-app"
# The frontend image's runtime config injection (a product part: images/backstage-frontend).
INJECT_RUNTIME_CONFIG = HERE.parents[1] / "images" / "backstage-frontend" / "inject-runtime-config.sh"
DB_USER = "postgres"
BACKEND_START_TIMEOUT = 180
CATALOG_TIMEOUT = 120
# The search index is built by a scheduled task a few seconds after start.
SEARCH_TIMEOUT = 300
SCAFFOLDER_TASK_TIMEOUT = 180


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/15/bin/initdb"))
    if not candidates:
        pytest.fail("PostgreSQL 15 is not installed: run tests/backstage-app/setup-host.sh")
    return Path(candidates[-1]).parent


def http_get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    return http_request(url, token=token, timeout=timeout)


def http_request(
    url: str, token: str | None = None, body: object = None, timeout: float = 10
) -> tuple[int, bytes]:
    """GET, or POST of BODY as JSON."""
    request = urllib.request.Request(url)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def issue(
    ca_key: ec.EllipticCurvePrivateKey | None,
    ca_cert: x509.Certificate | None,
    common_name: str,
    *,
    is_ca: bool = False,
    dns_names: tuple[str, ...] = (),
    client: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = x509.oid.ExtendedKeyUsageOID
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([usage.CLIENT_AUTH if client else usage.SERVER_AUTH]),
            critical=False,
        )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
    cert = builder.sign(ca_key or key, hashes.SHA256())
    return key, cert


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def app_build() -> Path:
    """Build (or reuse) the app; build.sh prints the output directory last."""
    result = subprocess.run(
        [str(HERE / "build.sh")], check=True, capture_output=True, text=True
    )
    out = Path(result.stdout.strip().splitlines()[-1])
    assert (out / "backend" / "packages" / "backend" / "dist" / "index.cjs.js").is_file()
    return out


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="backstage-app-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for localhost, a client cert with CN postgres."""
    pki_dir = workdir / "pki"
    pki_dir.mkdir()
    ca_key, ca_cert = issue(None, None, "backstage-app test CA", is_ca=True)
    server_key, server_cert = issue(ca_key, ca_cert, "localhost", dns_names=("localhost",))
    client_key, client_cert = issue(ca_key, ca_cert, DB_USER, client=True)
    files = {
        "ca": pki_dir / "ca.crt",
        "server_cert": pki_dir / "server.crt",
        "server_key": pki_dir / "server.key",
        "client_cert": pki_dir / "tls.crt",
        "client_key": pki_dir / "tls.key",
    }
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["server_cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files["client_cert"].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(files["server_key"], server_key)
    write_key(files["client_key"], client_key)
    for path in files.values():
        if path != files["client_key"]:
            path.chmod(0o644 if path.suffix == ".crt" else 0o600)
    pki_dir.chmod(0o755)
    return files


@pytest.fixture(scope="session")
def postgres(workdir: Path, pki: dict[str, Path]) -> Iterator[dict[str, object]]:
    """PostgreSQL 15 on 127.0.0.1: TLS only, cert auth for postgres, all else rejected."""
    bindir = pg_bindir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as Debian's postgres user.
        owner = pwd.getpwnam("postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
        for path in (pki["server_key"], pki["server_cert"], pki["ca"]):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        pgdata_parent = workdir / "pg"
        pgdata_parent.mkdir()
        os.chown(pgdata_parent, owner.pw_uid, owner.pw_gid)
    else:
        pgdata_parent = workdir / "pg"
        pgdata_parent.mkdir()
    pgdata = pgdata_parent / "data"
    port = free_port()
    subprocess.run(
        run_as + [str(bindir / "initdb"), "-D", str(pgdata), "-U", DB_USER,
                  "--auth=reject", "--encoding=UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, text=True,
    )
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{pgdata_parent}'",
        "ssl": "on",
        "ssl_cert_file": f"'{pki['server_cert']}'",
        "ssl_key_file": f"'{pki['server_key']}'",
        "ssl_ca_file": f"'{pki['ca']}'",
        "max_connections": "200",
    }
    conf = pgdata / "postgresql.conf"
    with conf.open("a") as handle:
        handle.writelines(f"{name} = {value}\n" for name, value in settings.items())
    (pgdata / "pg_hba.conf").write_text(
        f"hostssl all {DB_USER} 127.0.0.1/32 cert\n"
        "host all all 0.0.0.0/0 reject\n"
        "host all all ::/0 reject\n"
    )
    log = pgdata_parent / "postgres.log"
    subprocess.run(
        run_as + [str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "start"],
        check=True, capture_output=True, text=True,
    )
    try:
        yield {"port": port, "bindir": bindir, "log": log}
    finally:
        subprocess.run(
            run_as + [str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            check=False, capture_output=True,
        )


def psql(
    postgres: dict[str, object], pki: dict[str, Path], sql: str, database: str = "postgres"
) -> list[str]:
    """Run a query over TLS with the client certificate, like the backend does."""
    conninfo = (
        f"host=localhost port={postgres['port']} user={DB_USER} dbname={database} "
        f"sslmode=verify-full sslrootcert={pki['ca']} "
        f"sslcert={pki['client_cert']} sslkey={pki['client_key']}"
    )
    result = subprocess.run(
        [str(Path(str(postgres["bindir"])) / "psql"), conninfo, "-XAtc", sql],
        check=True, capture_output=True, text=True,
    )
    return result.stdout.splitlines()


@pytest.fixture(scope="session")
def frontend_url() -> str:
    return f"http://localhost:{free_port()}"


@pytest.fixture(scope="session")
def backend(
    app_build: Path,
    workdir: Path,
    pki: dict[str, Path],
    postgres: dict[str, object],
    frontend_url: str,
) -> Iterator[str]:
    """The built backend, run from backend/ as the image runs it, plus a deployment config."""
    port = free_port()
    base_url = f"http://localhost:{port}"
    deployment_config = workdir / "app-config.deployment.yaml"
    deployment_config.write_text(json.dumps({
        "app": {"baseUrl": frontend_url},
        "backend": {
            "baseUrl": base_url,
            "cors": {"origin": frontend_url, "credentials": True},
            "listen": {"port": port, "host": "127.0.0.1"},
            "database": {
                "client": "pg",
                "connection": {
                    "host": "localhost",
                    "port": postgres["port"],
                    "user": DB_USER,
                    "ssl": {
                        "rejectUnauthorized": True,
                        "ca": {"$file": str(pki["ca"])},
                        "cert": {"$file": str(pki["client_cert"])},
                        "key": {"$file": str(pki["client_key"])},
                    },
                },
            },
        },
    }, indent=2))
    log_path = workdir / "backend.log"
    backend_dir = app_build / "backend"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_CONFIG_", "PG"))}
    env["NODE_ENV"] = "production"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", "packages/backend",
             "--config", "app-config.yaml",
             "--config", "app-config.production.yaml",
             "--config", str(deployment_config)],
            cwd=backend_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + BACKEND_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"backend exited with {process.returncode}:\n"
                            + log_path.read_text()[-5000:])
            try:
                status = http_get(f"{base_url}/.backstage/health/v1/readiness", timeout=2)[0]
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("backend not ready in time:\n" + log_path.read_text()[-5000:])
            time.sleep(1)
        yield base_url
    finally:
        stop_process(process, grace=30)


@pytest.fixture(scope="session")
def guest_token(backend: str) -> str:
    status, body = http_get(f"{backend}/api/auth/guest/refresh")
    assert status == 200, body
    return json.loads(body)["backstageIdentity"]["token"]


class SinglePageAppHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, and index.html for every path that is not one (as nginx's try_files)."""

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.path = "/index.html"
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def frontend(app_build: Path, workdir: Path, backend: str, frontend_url: str) -> Iterator[Path]:
    """The built frontend, served as static files with runtime config written in."""
    dist = workdir / "dist"
    shutil.copytree(app_build / "frontend" / "dist", dist)
    runtime_config = workdir / "frontend-config.json"
    runtime_config.write_text(json.dumps({
        "app": {"baseUrl": frontend_url, "title": "backstage.k8s test"},
        "backend": {"baseUrl": backend},
    }))
    subprocess.run(
        [str(INJECT_RUNTIME_CONFIG), str(dist), str(runtime_config)],
        check=True,
    )
    port = int(frontend_url.rsplit(":", 1)[1])
    handler = functools.partial(SinglePageAppHandler, directory=str(dist))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield dist
    finally:
        server.shutdown()
        server.server_close()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium: run tests/backstage-app/setup-host.sh")


def run_chromium(url: str, workdir: Path, *args: str) -> str:
    """Chromium's stdout for URL once it ran the page's scripts (guest sign-in, API calls)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--virtual-time-budget=30000", *args, url],
        check=True, capture_output=True, text=True, timeout=180,
    )
    return result.stdout


def rendered_dom(url: str, workdir: Path) -> str:
    """The page's DOM after Chromium ran its scripts."""
    return run_chromium(url, workdir, "--dump-dom")


def screenshot(url: str, workdir: Path, name: str) -> Path:
    """A PNG of the page in artifacts/backstage-app/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.unlink(missing_ok=True)
    run_chromium(url, workdir, "--window-size=1280,900", f"--screenshot={path}")
    return path


def wait_for_entity(backend: str, token: str, kind: str, name: str) -> None:
    """Until the catalog serves the entity (its file locations are read after start)."""
    deadline = time.monotonic() + CATALOG_TIMEOUT
    while time.monotonic() < deadline:
        status = http_get(f"{backend}/api/catalog/entities/by-name/{kind}/default/{name}",
                          token=token)[0]
        if status == 200:
            return
        time.sleep(2)
    pytest.fail(f"the catalog has no {kind} {name} after {CATALOG_TIMEOUT} s")


def search_results(backend: str, token: str, term: str) -> list[dict[str, object]]:
    status, body = http_get(f"{backend}/api/search/query?term={term}", token=token)
    assert status == 200, body
    return json.loads(body)["results"]


def wait_for_search_result(backend: str, token: str, term: str, title: str) -> list[str]:
    """Titles found for TERM once the index holds TITLE (its first build runs after start)."""
    deadline = time.monotonic() + SEARCH_TIMEOUT
    titles: list[str] = []
    while time.monotonic() < deadline:
        titles = [str(r["document"]["title"]) for r in search_results(backend, token, term)]
        if title in titles:
            return titles
        time.sleep(5)
    pytest.fail(f"search for {term!r} did not find {title!r} within {SEARCH_TIMEOUT} s: {titles}")


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("probe", ["readiness", "liveness"])
def test_backend_health_endpoint_answers_200(backend: str, probe: str) -> None:
    status, body = http_get(f"{backend}/.backstage/health/v1/{probe}")
    assert status == 200, body


def test_catalog_refuses_requests_without_a_token(backend: str) -> None:
    status = http_get(f"{backend}/api/catalog/entities")[0]
    assert status == 401


def test_guest_sign_in_yields_the_guest_user(backend: str, guest_token: str) -> None:
    status, body = http_get(f"{backend}/api/auth/guest/refresh")
    assert status == 200
    identity = json.loads(body)["backstageIdentity"]["identity"]
    assert identity["userEntityRef"] == "user:default/guest"


def test_catalog_lists_the_example_entities(backend: str, guest_token: str) -> None:
    wanted = {
        ("Component", "example-website"),
        ("System", "examples"),
        ("API", "example-grpc-api"),
        ("User", "guest"),
        ("Group", "guests"),
        ("Template", "example-service"),
    }
    deadline = time.monotonic() + CATALOG_TIMEOUT
    found: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        status, body = http_get(f"{backend}/api/catalog/entities", token=guest_token)
        assert status == 200, body
        found = {(e["kind"], e["metadata"]["name"]) for e in json.loads(body)}
        if wanted <= found:
            break
        time.sleep(2)
    assert wanted <= found, f"missing {wanted - found}"


def test_each_plugin_gets_its_own_database(
    backend: str, postgres: dict[str, object], pki: dict[str, Path]
) -> None:
    databases = set(psql(postgres, pki, "SELECT datname FROM pg_database"))
    assert {"backstage_plugin_catalog", "backstage_plugin_auth", "backstage_plugin_scaffolder",
            "backstage_plugin_search"} <= databases


def test_backend_connects_over_tls_with_its_client_certificate(
    backend: str, guest_token: str, postgres: dict[str, object], pki: dict[str, Path]
) -> None:
    http_get(f"{backend}/api/catalog/entities", token=guest_token)
    rows = psql(
        postgres, pki,
        "SELECT s.ssl, s.client_dn FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.datname = 'backstage_plugin_catalog'",
    )
    assert rows, "the backend holds no connection to backstage_plugin_catalog"
    assert all(row == f"t|/CN={DB_USER}" for row in rows), rows


def test_runtime_config_injection_replaces_its_previous_value(
    app_build: Path, workdir: Path
) -> None:
    dist = workdir / "dist-injection"
    shutil.copytree(app_build / "frontend" / "dist", dist)
    inject = INJECT_RUNTIME_CONFIG
    for url in ("http://first.test", "http://second.test"):
        config = workdir / "injection.json"
        config.write_text(json.dumps({"backend": {"baseUrl": url}}))
        subprocess.run([str(inject), str(dist), str(config)], check=True)
    html = (dist / "index.html").read_text()
    assert html.count('id="backstage-runtime-config"') == 1
    assert "http://second.test" in html and "http://first.test" not in html
    assert html.index('id="backstage-runtime-config"') < html.index("</head>")


@pytest.mark.parametrize("path", ["/catalog", "/"], ids=["catalog-page", "app-root"])
def test_browser_signs_in_as_guest_and_lists_the_catalog(
    frontend: Path, frontend_url: str, backend: str, guest_token: str, workdir: Path, path: str
) -> None:
    # The catalog holds the examples first (see test_catalog_lists_the_example_entities).
    deadline = time.monotonic() + CATALOG_TIMEOUT
    while time.monotonic() < deadline:
        body = http_get(f"{backend}/api/catalog/entities?filter=kind=component",
                        token=guest_token)[1]
        if "example-website" in body.decode():
            break
        time.sleep(2)
    dom = rendered_dom(f"{frontend_url}{path}", workdir)
    assert "example-website" in dom, dom[-3000:]


def test_scaffolder_runs_the_example_template(backend: str, guest_token: str) -> None:
    wait_for_entity(backend, guest_token, "template", "example-service")
    status, body = http_request(
        f"{backend}/api/scaffolder/v2/tasks", token=guest_token,
        body={"templateRef": "template:default/example-service",
              "values": {"name": "scaffolded-service", "description": "made by the test"}},
    )
    assert status == 201, body
    task_id = json.loads(body)["id"]
    deadline = time.monotonic() + SCAFFOLDER_TASK_TIMEOUT
    task: dict[str, object] = {}
    while time.monotonic() < deadline:
        status, body = http_get(f"{backend}/api/scaffolder/v2/tasks/{task_id}", token=guest_token)
        assert status == 200, body
        task = json.loads(body)
        if task["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(2)
    status, events = http_get(f"{backend}/api/scaffolder/v2/tasks/{task_id}/events",
                              token=guest_token)
    assert task.get("status") == "completed", events.decode()[-3000:]
    # debug:log lists the workspace that fetch:template wrote.
    log = events.decode()
    assert "Wrote catalog-info.yaml for scaffolded-service" in log
    assert "catalog-info.yaml" in log


def test_search_finds_catalog_entities_in_postgresql(
    backend: str, guest_token: str, postgres: dict[str, object], pki: dict[str, Path]
) -> None:
    titles = wait_for_search_result(backend, guest_token, "example-website", "example-website")
    assert "example-grpc-api" not in titles
    # The index is PostgreSQL's (the pg engine), not an in-memory one.
    documents = psql(postgres, pki, "SELECT count(*) FROM documents", "backstage_plugin_search")
    assert int(documents[0]) > 0


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/create", "Example service"),
        ("/search?query=example-website", "example-website"),
        ("/api-docs", "example-grpc-api"),
        ("/settings", "guest"),
    ],
    ids=["scaffolder", "search", "api-docs", "user-settings"],
)
def test_browser_opens_the_plugin_pages(
    frontend: Path, frontend_url: str, backend: str, guest_token: str, workdir: Path,
    path: str, wanted: str,
) -> None:
    wait_for_entity(backend, guest_token, "template", "example-service")
    wait_for_entity(backend, guest_token, "api", "example-grpc-api")
    if path.startswith("/search"):
        wait_for_search_result(backend, guest_token, "example-website", "example-website")
    dom = rendered_dom(f"{frontend_url}{path}", workdir)
    assert wanted in dom, dom[-3000:]
    shot = screenshot(f"{frontend_url}{path}", workdir, path.strip("/").split("?")[0])
    assert shot.stat().st_size > 0


def test_backend_refuses_a_plugin_it_does_not_have(app_build: Path) -> None:
    # A split deployment names each backend's plugins in BACKSTAGE_BACKEND_PLUGINS; a name the app
    # does not know stops the process at once, naming the plugins it has.
    result = subprocess.run(
        ["node", "packages/backend", "--config", "app-config.yaml"],
        cwd=app_build / "backend", capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "BACKSTAGE_BACKEND_PLUGINS": "catalog,catalogue"},
    )
    assert result.returncode != 0
    assert "BACKSTAGE_BACKEND_PLUGINS names plugins this backend does not have: catalogue" in result.stderr
    assert "it has proxy, auth, catalog, scaffolder, search, gateway" in result.stderr
