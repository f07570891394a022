"""The offline-built images, run the way the roles run them.

Each image is unpacked from its OCI archive and started with runc as its
non-root user under the constraints of PodSecurity ``restricted`` (no
capabilities, no privilege escalation, read-only root filesystem with a tmpfs
on /tmp, the user of the image config, which must not be root); with the test
cluster up, each also runs as a pod in a namespace that enforces ``restricted``.

- postgres: initialises a PGDATA that is a sub-directory of a volume, accepts a
  local connection on its unix socket, and serves TLS with ``cert`` auth.
- backstage-backend: answers its health endpoints with that PostgreSQL as its
  database, reached with a client certificate (CN ``postgres``).
- backstage-frontend: serves index.html (no-cache) with the runtime config,
  hashed assets (immutable), the SPA fallback and /healthz.
- ee (the collection's execution environment, built by ansible-builder and
  podman): through its entry point, as AWX and the rotation CronJob start it,
  ansible-playbook finds backstage.k8s.rotate and the modules of kubernetes.core
  and community.crypto it needs, and ansible-runner runs a playbook of the
  collection, with no network.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from testcluster import wait_until  # noqa: E402  (tests/lib)

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
EE_REQUIREMENTS = HERE.parents[1] / "images" / "execution-environment" / "requirements-ee.txt"
EE_DEFINITION = EE_REQUIREMENTS.with_name("execution-environment.yml")
IMAGES = ("postgres", "backstage-backend", "backstage-frontend", "ee")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="building images and runc need root")


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Image:
    name: str
    archive: Path
    reference: str

    @property
    def tag(self) -> str:
        return self.reference.rsplit(":", 1)[1]

    def config(self) -> dict[str, Any]:
        """The OCI image config (entrypoint, cmd, user, env, ...)."""
        with tarfile.open(self.archive) as tar:
            def blob(digest: str) -> dict[str, Any]:
                f = tar.extractfile("./blobs/" + digest.replace(":", "/"))
                assert f is not None
                return json.load(f)

            index_file = tar.extractfile("./index.json")
            assert index_file is not None
            index = json.load(index_file)
            manifest = blob(index["manifests"][0]["digest"])
            return blob(manifest["config"]["digest"])


@pytest.fixture(scope="session")
def images() -> dict[str, Image]:
    """Build (or reuse) every image: `tests/images/build all`."""
    result = subprocess.run([str(BUILD), "all"], capture_output=True, text=True, timeout=3600, check=False)
    assert result.returncode == 0, f"tests/images/build all failed:\n{result.stderr[-5000:]}"
    built: dict[str, Image] = {}
    for line in result.stdout.splitlines():
        archive, reference = line.split()
        name = reference.split("/", 1)[1].rsplit(":", 1)[0]  # backstage-k8s/<name>:<tag>
        built[name] = Image(name, Path(archive), reference)
    assert set(built) == set(IMAGES), result.stdout
    return built


# --------------------------------------------------------------------------- runc


@dataclass
class Container:
    id: str
    bundle: Path
    log: Path

    def state(self) -> dict[str, Any]:
        out = subprocess.run(["runc", "state", self.id], capture_output=True, text=True, check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {"status": "gone"}

    @property
    def pid(self) -> int:
        return int(self.state()["pid"])

    def running(self) -> bool:
        return self.state().get("status") == "running"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def exec(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runc", "exec", self.id, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def in_netns(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a host command in the container's network namespace."""
        return subprocess.run(["nsenter", f"--net=/proc/{self.pid}/ns/net", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def remove(self) -> None:
        subprocess.run(["runc", "delete", "--force", self.id], capture_output=True, check=False)


@dataclass
class Bundle:
    """An image unpacked for runc, confined like a PodSecurity restricted pod."""
    image: Image
    path: Path
    containers: list[Container] = field(default_factory=list)

    @classmethod
    def unpack(cls, image: Image, workdir: Path) -> "Bundle":
        layout = workdir / "oci"
        layout.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(layout), "-xf", str(image.archive)], check=True)
        path = workdir / "bundle"
        subprocess.run(["umoci", "unpack", "--image", f"{layout}:{image.tag}", str(path)],
                       check=True, capture_output=True)
        shutil.rmtree(layout)
        return cls(image, path)

    def run(self, args: list[str] | None = None, env: dict[str, str] | None = None,
            mounts: list[tuple[Path, str]] = (), join_netns_of: Container | None = None,
            name: str = "", tmpfs: tuple[str, ...] = ()) -> Container:
        spec = json.loads((self.path / "config.json").read_text())
        process = spec["process"]
        process["terminal"] = False
        if args is not None:
            process["args"] = args
        process["env"] = [e for e in process["env"] if not e.startswith("TERM=")]
        process["env"] += [f"{k}={v}" for k, v in (env or {}).items()]
        # restricted: non-root, no escalation, no capabilities, read-only root.
        assert process["user"]["uid"] != 0, f"{self.image.name} runs as root"
        process["noNewPrivileges"] = True
        process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable",
                                                   "permitted", "ambient")}
        spec["root"]["readonly"] = True
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] in
                          ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys")]
        # /tmp and the other writable paths: emptyDir volumes in a pod.
        for destination in ("/tmp", *tmpfs):
            spec["mounts"].append({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                                   "options": ["nosuid", "nodev", "mode=1777"]})
        # /etc/hosts as the kubelet writes one.
        hosts = self.path.parent / "hosts"
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        hosts.chmod(0o644)
        mounts = [(hosts, "/etc/hosts"), *mounts]
        for source, destination in mounts:
            spec["mounts"].append({"destination": destination, "type": "bind",
                                   "source": str(source), "options": ["rbind", "rw"]})
        if join_netns_of is not None:
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = f"/proc/{join_netns_of.pid}/ns/net"
        (self.path / "config.json").write_text(json.dumps(spec))
        cid = f"bk8s-{name or self.image.name}-{uuid.uuid4().hex[:8]}"
        log = self.path.parent / f"{cid}.log"
        with log.open("wb") as out:
            result = subprocess.run(["runc", "run", "--detach", "--bundle", str(self.path), cid],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60, check=False)
        container = Container(cid, self.path, log)
        self.containers.append(container)
        assert result.returncode == 0, f"runc run {self.image.name} failed:\n{container.logs()}"
        return container

    def remove(self) -> None:
        for container in self.containers:
            container.remove()


@pytest.fixture
def unpack(images: dict[str, Image], tmp_path: Path) -> Iterator[Callable[[str], Bundle]]:
    bundles: list[Bundle] = []

    def _unpack(name: str) -> Bundle:
        bundle = Bundle.unpack(images[name], tmp_path / f"{name}-{len(bundles)}")
        bundles.append(bundle)
        return bundle

    yield _unpack
    for bundle in reversed(bundles):
        bundle.remove()


# --------------------------------------------------------------------------- PKI


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, uid: int) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chown(path, uid, uid)
    path.chmod(0o600)


def make_pki(directory: Path, server_names: list[str], server_uid: int, client_cn: str,
             client_uid: int) -> dict[str, Path]:
    """A throwaway CA, a server certificate and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("images test CA"))
          .issuer_name(_name("images test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.crt"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(stem: str, cn: str, uid: int, usage: x509.ObjectIdentifier,
             sans: list[str]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        paths[f"{stem}_cert"] = directory / f"{stem}.crt"
        paths[f"{stem}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{stem}_key"] = directory / f"{stem}.key"
        _write_key(paths[f"{stem}_key"], key, uid)

    leaf("server", server_names[0], server_uid, ExtendedKeyUsageOID.SERVER_AUTH, server_names)
    leaf("client", client_cn, client_uid, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return paths


PG_HBA = """\
# Local socket: the superuser (entrypoint init scripts, probes, kubectl exec).
local   all  postgres                 trust
# TCP: TLS with a client certificate whose CN is the database user; nothing else.
hostssl all  postgres  0.0.0.0/0      cert
hostssl all  postgres  ::/0           cert
host    all  all       0.0.0.0/0      reject
host    all  all       ::/0           reject
"""

# The server's socket directory is an emptyDir under a read-only root.
PG_TMPFS = ("/var/run/postgresql",)

PG_ARGS = [
    "postgres",
    "-c", "ssl=on",
    "-c", "ssl_cert_file=/etc/postgresql-tls/server.crt",
    "-c", "ssl_key_file=/etc/postgresql-tls/server.key",
    "-c", "ssl_ca_file=/etc/postgresql-tls/ca.crt",
    "-c", "hba_file=/etc/postgresql-config/pg_hba.conf",
]


# --------------------------------------------------------------------------- postgres


def wait_for_postgres(container: Container, what: str = "postgres to accept connections") -> None:
    """Ready means: set-up done (the temporary init server is gone) and the
    real server answers on its socket."""
    def ready() -> bool:
        logs = container.logs()
        done = ("init process complete" in logs or "Skipping initialization" in logs)
        return done and container.exec("pg_isready", "-q").returncode == 0
    wait_until(what, ready, diagnostics=container.logs)


@pytest.fixture
def postgres(unpack: Callable[[str], Bundle], tmp_path: Path) -> dict[str, Any]:
    """The postgres image as the role runs it: uid 999, PGDATA a sub-directory
    of a volume owned by root with group 999 (what fsGroup gives), TLS files
    and pg_hba.conf mounted, `cert` auth for TCP."""
    volume = tmp_path / "pgvolume"
    volume.mkdir()
    os.chown(volume, 0, 999)
    volume.chmod(0o2775)
    pki = make_pki(tmp_path / "pki", ["localhost", "postgres"], 999, "postgres", 1000)
    config = tmp_path / "pgconfig"
    config.mkdir()
    (config / "pg_hba.conf").write_text(PG_HBA)
    bundle = unpack("postgres")
    container = bundle.run(
        args=["docker-entrypoint.sh", *PG_ARGS],
        env={"POSTGRES_PASSWORD": secrets.token_hex(16),
             "PGDATA": "/var/lib/postgresql/data/pgdata"},
        mounts=[(volume, "/var/lib/postgresql/data"), (pki["ca"].parent, "/etc/postgresql-tls"),
                (config, "/etc/postgresql-config")],
        tmpfs=PG_TMPFS,
    )
    wait_for_postgres(container)
    return {"container": container, "volume": volume, "pki": pki}


def test_postgres_image_follows_the_official_entrypoint_contract(images: dict[str, Image]) -> None:
    config = images["postgres"].config()["config"]
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["postgres"]
    assert config["User"] == "999:999"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PGDATA"] == "/var/lib/postgresql/data"
    assert env["PATH"].startswith("/usr/lib/postgresql/15/bin:")
    assert "5432/tcp" in config["ExposedPorts"]


def test_postgres_initialises_pgdata_in_a_volume_and_accepts_a_socket_connection(
        postgres: dict[str, Any]) -> None:
    container: Container = postgres["container"]
    pgdata = postgres["volume"] / "pgdata"
    assert (pgdata / "PG_VERSION").read_text().strip() == "15"
    assert pgdata.stat().st_mode & 0o777 == 0o700
    assert pgdata.stat().st_uid == 999
    result = container.exec("psql", "-U", "postgres", "-Atc",
                            "SELECT current_user, current_setting('ssl'), version()")
    assert result.returncode == 0, result.stderr
    user, ssl, version = result.stdout.strip().split("|")
    assert (user, ssl) == ("postgres", "on")
    assert version.startswith("PostgreSQL 15.")
    assert container.exec("id", "-u").stdout.strip() == "999"


def test_postgres_restart_keeps_the_data_and_skips_initialisation(
        postgres: dict[str, Any], unpack: Callable[[str], Bundle]) -> None:
    first: Container = postgres["container"]
    assert first.exec("psql", "-U", "postgres", "-c", "CREATE TABLE kept (v text);"
                      "INSERT INTO kept VALUES ('still here')").returncode == 0
    first.remove()
    pki = postgres["pki"]
    config = pki["ca"].parent.parent / "pgconfig"
    second = unpack("postgres").run(
        args=["docker-entrypoint.sh", *PG_ARGS],
        env={"PGDATA": "/var/lib/postgresql/data/pgdata"},  # no password needed any more
        mounts=[(postgres["volume"], "/var/lib/postgresql/data"),
                (pki["ca"].parent, "/etc/postgresql-tls"), (config, "/etc/postgresql-config")],
        tmpfs=PG_TMPFS)
    wait_for_postgres(second, "postgres to restart")
    assert "Skipping initialization" in second.logs()
    assert second.exec("psql", "-U", "postgres", "-Atc",
                       "SELECT v FROM kept").stdout.strip() == "still here"


def test_postgres_runs_init_scripts_and_refuses_to_start_without_a_password(
        unpack: Callable[[str], Bundle], tmp_path: Path) -> None:
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-schema.sql").write_text("CREATE TABLE from_init (v int); INSERT INTO from_init VALUES (42);")
    (initdb / "20-shell.sh").write_text('psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
                                        "-c 'INSERT INTO from_init VALUES (43)'\n")
    volume = tmp_path / "vol"
    volume.mkdir()
    os.chown(volume, 999, 999)
    ok = unpack("postgres").run(
        env={"POSTGRES_PASSWORD": "x" * 12, "POSTGRES_DB": "app"},
        mounts=[(volume, "/var/lib/postgresql/data"), (initdb, "/docker-entrypoint-initdb.d")],
        tmpfs=PG_TMPFS)
    wait_for_postgres(ok, "postgres with init scripts")
    rows = ok.exec("psql", "-U", "postgres", "-d", "app", "-Atc", "SELECT v FROM from_init ORDER BY v")
    assert rows.stdout.split() == ["42", "43"], rows.stderr + ok.logs()

    empty = tmp_path / "empty"
    empty.mkdir()
    os.chown(empty, 999, 999)
    refused = unpack("postgres").run(mounts=[(empty, "/var/lib/postgresql/data")], name="nopass",
                                     tmpfs=PG_TMPFS)
    wait_until("postgres without a password to exit", lambda: not refused.running(), timeout=30)
    assert "superuser password is not specified" in refused.logs()
    assert not (empty / "PG_VERSION").exists()


# --------------------------------------------------------------------------- backend


def test_backend_answers_health_with_postgres_over_client_certificate_tls(
        postgres: dict[str, Any], unpack: Callable[[str], Bundle], tmp_path: Path) -> None:
    pki = postgres["pki"]
    deployment = tmp_path / "backend-config"
    deployment.mkdir()
    (deployment / "app-config.deployment.yaml").write_text(json.dumps({
        "backend": {
            "baseUrl": "http://localhost:7007",
            "database": {"client": "pg", "connection": {
                "host": "localhost", "port": 5432, "user": "postgres",
                "ssl": {"rejectUnauthorized": True,
                        "ca": {"$file": "/etc/backstage-tls/ca.crt"},
                        "cert": {"$file": "/etc/backstage-tls/client.crt"},
                        "key": {"$file": "/etc/backstage-tls/client.key"}}}},
        },
    }))
    bundle = unpack("backstage-backend")
    cmd = bundle.image.config()["config"]["Cmd"]
    backend = bundle.run(
        args=[*cmd, "--config", "/etc/backstage/app-config.deployment.yaml"],
        mounts=[(deployment, "/etc/backstage"), (pki["ca"].parent, "/etc/backstage-tls")],
        join_netns_of=postgres["container"])

    def health(probe: str) -> str:
        return backend.in_netns("python3", "-c", (
            "import sys, urllib.request\n"
            "try:\n"
            f"    r = urllib.request.urlopen('http://127.0.0.1:7007/.backstage/health/v1/{probe}', timeout=3)\n"
            "    print(r.status)\n"
            "except Exception as e:\n"
            "    print(getattr(e, 'code', 'down'))\n")).stdout.strip()

    wait_until("the backend to be ready", lambda: health("readiness") == "200", timeout=240,
               interval=2, diagnostics=lambda: backend.logs()[-5000:])
    assert health("liveness") == "200"
    assert backend.exec("/usr/local/bin/node", "-e", "console.log(process.getuid())").stdout.strip() == "1000"
    databases = postgres["container"].exec("psql", "-U", "postgres", "-Atc",
                                           "SELECT datname FROM pg_database")
    assert "backstage_plugin_catalog" in databases.stdout.split()


def test_backend_image_has_no_shell(images: dict[str, Image], unpack: Callable[[str], Bundle]) -> None:
    bundle = unpack("backstage-backend")
    rootfs = bundle.path / "rootfs"
    assert not any((rootfs / p).exists() for p in ("bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash"))
    config = images["backstage-backend"].config()["config"]
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/app"
    assert "NODE_ENV=production" in config["Env"]
    assert "7007/tcp" in config["ExposedPorts"]


# --------------------------------------------------------------------------- frontend


HTTP_PROBE = """\
import json, sys, urllib.request, urllib.error
out = {}
for path in sys.argv[1:]:
    try:
        r = urllib.request.urlopen('http://127.0.0.1:8080' + path, timeout=5)
    except urllib.error.HTTPError as e:
        r = e
    out[path] = {'status': r.status, 'headers': {k.lower(): v for k, v in r.headers.items()},
                 'body': r.read().decode('utf-8', 'replace')}
print(json.dumps(out))
"""


def http_in(container: Container, *paths: str) -> dict[str, Any]:
    result = container.in_netns("python3", "-c", HTTP_PROBE, *paths)
    assert result.returncode == 0, result.stderr + container.logs()
    return json.loads(result.stdout)


@pytest.fixture
def frontend(unpack: Callable[[str], Bundle]) -> Container:
    container = unpack("backstage-frontend").run(env={
        "APP_BASE_URL": "https://backstage.example.test",
        "BACKEND_BASE_URL": "https://backstage.example.test",
    })
    wait_until("nginx to answer /healthz",
               lambda: container.running() and container.in_netns(
                   "python3", "-c", HTTP_PROBE, "/healthz").returncode == 0,
               timeout=30, diagnostics=container.logs)
    return container


def test_frontend_serves_index_html_uncached_with_runtime_config(frontend: Container) -> None:
    pages = http_in(frontend, "/", "/index.html", "/catalog/default/component/x", "/healthz")
    for path in ("/", "/index.html", "/catalog/default/component/x"):
        page = pages[path]
        assert page["status"] == 200, path
        assert page["headers"]["cache-control"] == "no-cache", path
        assert 'type="backstage.io/config"' in page["body"], path
        assert "https://backstage.example.test" in page["body"], path
    assert pages["/healthz"]["status"] == 200
    assert pages["/healthz"]["body"] == "ok\n"


def test_frontend_serves_hashed_assets_as_immutable(frontend: Container,
                                                    unpack: Callable[[str], Bundle]) -> None:
    index = http_in(frontend, "/index.html")["/index.html"]["body"]

    scripts = re.findall(r'src="(/static/[^"]+\.js)"', index)
    assert scripts, index[:2000]
    pages = http_in(frontend, scripts[0], "/static/no-such-file.js")
    asset = pages[scripts[0]]
    assert asset["status"] == 200
    assert asset["headers"]["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset["headers"]["content-type"]
    assert pages["/static/no-such-file.js"]["status"] == 404


def test_frontend_runs_as_nginx_user_with_a_read_only_root(frontend: Container) -> None:
    # nginx's master and workers: every process of the container is uid 101.
    procs = subprocess.run(["ps", "-o", "uid=", "--ppid", str(frontend.pid), "-p", str(frontend.pid)],
                           capture_output=True, text=True, check=False).stdout.split()
    assert procs and set(procs) == {"101"}, procs
    # Nothing it could not open or write as that user.
    assert "[alert]" not in frontend.logs() and "[emerg]" not in frontend.logs(), frontend.logs()


# --------------------------------------------------------------------------- ee

# What the rotation CronJob sets for its read-only root (roles/cert_rotation/templates/cronjob.yaml.j2).
ROTATION_ENV = {"ANSIBLE_HOME": "/tmp/ansible", "ANSIBLE_LOCAL_TEMP": "/tmp/ansible/tmp",
                "ANSIBLE_REMOTE_TEMP": "/tmp/ansible/tmp"}

RUNNER_PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the client certificate
      backstage.k8s.cert_cn_check:
        certificate_path: /pki/client.crt
        ca_certificate_path: /pki/ca.crt
        user: postgres
"""


def test_execution_environment_is_what_awx_expects(images: dict[str, Image]) -> None:
    """ansible-builder's contract: the label AWX looks for, uid 1000, /runner, its entry point."""
    config = images["ee"].config()["config"]
    assert config["Labels"]["ansible-execution-environment"] == "true", config
    assert config["User"] == "1000", config
    assert config["WorkingDir"] == "/runner", config
    assert config["Entrypoint"] == ["/opt/builder/bin/entrypoint", "dumb-init"], config


def test_execution_environment_runs_the_collections_modules_offline(
        images: dict[str, Image], unpack: Callable[[str], Bundle], tmp_path: Path) -> None:
    """Through the image's entry point, as the CronJob and AWX start it: the playbook resolves,
    modules of backstage.k8s, community.crypto and kubernetes.core run (the last one fails for
    want of a cluster, not of code), and ansible-runner runs a playbook of the collection."""
    pki = make_pki(tmp_path / "pki", ["postgres"], 1000, "postgres", 1000)
    bundle = unpack("ee")
    entrypoint = images["ee"].config()["config"]["Entrypoint"]
    script = (
        "set -e; id -u; echo \"HOME=$HOME\";"
        " ansible-playbook --syntax-check backstage.k8s.rotate;"
        " ansible localhost -m backstage.k8s.cert_cn_check"
        "   -a 'certificate_path=/pki/client.crt ca_certificate_path=/pki/ca.crt user=postgres';"
        " ansible localhost -m community.crypto.x509_certificate_info -a 'path=/pki/server.crt';"
        " ansible localhost -m kubernetes.core.k8s_info -a 'kind=Namespace' || true;"
        " mkdir -p /tmp/runner/project; printf '%s' \"$RUNNER_PLAYBOOK\" >/tmp/runner/project/check.yml;"
        " ansible-runner run /tmp/runner -p check.yml"
    )
    runner = bundle.run(args=[*entrypoint, "sh", "-c", script], mounts=[(pki["ca"].parent, "/pki")],
                        env={**ROTATION_ENV, "KUBECONFIG": "/nonexistent/kubeconfig",
                             "RUNNER_PLAYBOOK": RUNNER_PLAYBOOK})
    wait_until("the execution environment to finish", lambda: not runner.running(), timeout=240,
               diagnostics=runner.logs)
    out = runner.logs()
    assert out.splitlines()[0] == "1000", out
    # The entry point found a writable HOME under the read-only root.
    assert "HOME=/tmp" in out, out
    assert ("playbook: /usr/share/ansible/collections/ansible_collections/backstage/k8s/"
            "playbooks/rotate.yml") in out, out
    assert '"cn": "postgres"' in out, out
    assert '"subject"' in out and "images test CA" in out, out
    assert "Failed to import the required Python library" not in out, out
    assert "couldn't resolve module" not in out.lower(), out
    assert "FAILED" in out and ("kubeconfig" in out.lower() or "configuration" in out.lower()), out
    assert re.search(r"localhost\s*:\s*ok=1\s+changed=0\s+unreachable=0\s+failed=0", out), out


def _distribution(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_execution_environment_holds_exactly_the_hashed_python_packages(unpack: Callable[[str], Bundle]) -> None:
    """Every package pip installed is the one requirements-ee.txt pins (with its files' sha256), and
    nothing else: a requirement missing from that list would have failed the build."""
    pinned = set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)",
                            EE_REQUIREMENTS.read_text(), flags=re.MULTILINE))
    root = unpack("ee").path / "rootfs"
    installed = set()
    for metadata in root.glob("usr/local/lib/python3*/*-packages/*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in metadata.read_text().splitlines()[:5] if ": " in line)
        installed.add((_distribution(fields["Name"]), fields["Version"]))
    assert installed - {d for d in installed if d[0] in ("pip", "setuptools", "wheel")} == {
        (_distribution(name), version) for name, version in pinned}


def test_the_execution_environments_base_is_pinned_by_digest() -> None:
    """A user's build gets the base the definition names and no other: a tag alone could move."""
    base = yaml.safe_load(EE_DEFINITION.read_text())["images"]["base_image"]["name"]
    assert re.fullmatch(r"[a-z0-9./_:-]+@sha256:[0-9a-f]{64}", base), base


def test_an_unchanged_execution_environment_is_reused_not_rebuilt(images: dict[str, Image]) -> None:
    """A warm run builds the collection tarball, hashes the inputs and finds the archive: the same
    file, untouched (how long that takes is bench material, not a test's)."""
    ee = images["ee"]
    before = ee.archive.stat()
    assert build("ee") == [(str(ee.archive), ee.reference)]
    after = ee.archive.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# --------------------------------------------------------------------------- cache keys


def build(*args: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    result = subprocess.run([str(BUILD), *args], capture_output=True, text=True, timeout=1800,
                            env={**os.environ, **(env or {})}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return [tuple(line.split()) for line in result.stdout.splitlines()]


def test_an_unchanged_image_is_reused_and_a_changed_input_makes_a_new_one(
        images: dict[str, Image], tmp_path: Path) -> None:
    frontend = images["backstage-frontend"]
    again = build("backstage-frontend")
    assert again == [(str(frontend.archive), frontend.reference)]
    assert re.fullmatch(r"backstage-k8s/backstage-frontend:nginx[0-9.]+-[0-9a-f]{8}", frontend.reference)

    # The same app with one more file in its frontend: a new key, tag and archive.
    app = Path(subprocess.run([str(HERE.parent / "backstage-app" / "build.sh")], capture_output=True,
                              text=True, check=True).stdout.split()[-1])
    changed = tmp_path / "app"
    shutil.copytree(app / "context", changed / "context", symlinks=True)
    (changed / "context" / "packages" / "app" / "dist" / "robots.txt").write_text(
        "User-agent: *\nDisallow: /\n")
    [(archive, reference)] = build("backstage-frontend", env={"BACKSTAGE_K8S_APP_DIR": str(changed)})
    assert archive != str(frontend.archive) and reference != frontend.reference
    assert Path(archive).is_file()
    assert build("backstage-frontend") == [(str(frontend.archive), frontend.reference)]
