"""Helpers every test on the test cluster shares: where things are, the cluster and kubectl,
reading objects, a port-forward, PostgreSQL through it with the backend's client certificate,
HTTP through the Ingress, ansible-playbook runs, and waits that fail saying what they last saw.

The cluster must be up (`tests/cluster/cluster up`); the tests talk to it only as a user would:
kubectl with the admin kubeconfig, the containerd socket for image imports and the Ingress URL
from the host. TESTCLUSTER_INSTANCE picks the instance, as it does for the cluster script.

Test files import this module after putting its directory on sys.path (each conftest does,
the first thing it does).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

import pytest
import yaml
from cryptography import x509

T = TypeVar("T")

# -- where things are ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "tests" / "cluster"
CLUSTER = CLUSTER_DIR / "cluster"
# The ansible-playbook of the virtualenv running the tests.
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

# The Secrets the pki role keeps (the roles' defaults).
CA_SECRET = "backstage-pki-ca"
SERVER_SECRET = "postgres-server-tls"
CLIENT_SECRET = "backstage-postgres-client-tls"
DATABASE_USER = "postgres"


def artifacts_dir(name: str) -> Path:
    """artifacts/NAME in the checkout, made if missing: where tests leave logs and numbers."""
    path = REPO / "artifacts" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def venv_collections_path() -> str:
    """The directory holding ansible_collections in the virtualenv (`make venv` links this
    checkout there as backstage.k8s), named explicitly so that no other copy is used."""
    path = Path(sysconfig.get_paths()["purelib"])
    if not (path / "ansible_collections" / "backstage" / "k8s").exists():
        raise AssertionError(f"backstage.k8s is not linked into {path}: run make venv")
    return str(path)


def isolated_collections_path() -> str:
    """A collections path holding only this checkout as backstage.k8s (removed at exit), so that
    a copy of the collection installed elsewhere (Molecule's prerun puts one in
    ~/.ansible/collections) cannot shadow the code under test; the other collections still come
    from the virtualenv."""
    root = Path(tempfile.mkdtemp(prefix="bk8s-collections-"))
    (root / "ansible_collections" / "backstage").mkdir(parents=True)
    (root / "ansible_collections" / "backstage" / "k8s").symlink_to(REPO)
    atexit.register(shutil.rmtree, root, True)
    return str(root)


# -- ansible-playbook ---------------------------------------------------------------------------

def ansible_env(collections_path: Optional[str] = None, base: Optional[Mapping[str, str]] = None,
                repo_config: bool = True) -> dict[str, str]:
    """The environment of an ansible-playbook run from a test: ``base`` (this process's
    environment) without colours, with this checkout's ansible.cfg unless ``repo_config`` is false
    (a Molecule scenario's own config then stays), and ``collections_path`` when given."""
    env = dict(os.environ if base is None else base, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    if repo_config:
        env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    if collections_path is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


def ansible_playbook(*args: str, env: Mapping[str, str], timeout: float = 900,
                     cwd: Optional[Path] = REPO) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook with ``args``; its result, whatever its exit status."""
    return subprocess.run([ANSIBLE_PLAYBOOK, *args], capture_output=True, text=True, env=dict(env),
                          cwd=cwd, timeout=timeout, check=False)


def run_rotate(kubeconfig: str, namespace: str, *extra: str, log: Path, collections_path: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """playbooks/rotate.yml from this host: it starts a Job from the rotation CronJob and follows it
    (unless told not to). Its output goes to ``log``; with ``check`` a failed run fails the test."""
    variables = {"backstage_k8s_kubeconfig": kubeconfig, "cert_rotation_namespace": namespace}
    result = ansible_playbook("backstage.k8s.rotate", "-e", json.dumps(variables), *extra,
                              env=ansible_env(collections_path), timeout=1800)
    log.write_text(result.stdout + result.stderr)
    if check:
        assert result.returncode == 0, f"rotate.yml failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return result


# -- waiting ------------------------------------------------------------------------------------

def play_recap(output: str) -> dict[str, int]:
    """The counters of localhost's line in ansible-playbook's PLAY RECAP (ok, changed, failed, ...);
    fails the test when the output has none."""
    match = re.search(r"^localhost\s*:\s*(ok=\d+(?:\s+\w+=\d+)*)", output, flags=re.MULTILINE)
    assert match, "no play recap in:\n" + output[-3000:]
    return {name: int(value) for name, value in (field.split("=") for field in match[1].split())}


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """Ask a child process to end; kill it if it has not within `grace` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what it waited for and what it last saw."""


def wait_until(what: str, observe: Callable[[], T], timeout: float = 120, interval: float = 1, *,
               until: Callable[[T], Any] = bool, diagnostics: Optional[Callable[[], str]] = None) -> T:
    """Call ``observe`` every ``interval`` seconds until ``until`` holds for what it returns (by
    default: until it returns something truthy), and return that. After ``timeout`` seconds raise
    WaitTimeout with ``what``, the last observation and ``diagnostics()``."""
    deadline = time.monotonic() + timeout
    while True:
        last = observe()
        if until(last):
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"timed out after {timeout}s waiting for {what} (last: {last!r})"
    if diagnostics is not None:
        message += "\n" + diagnostics()
    raise WaitTimeout(message)


# -- the cluster --------------------------------------------------------------------------------

def default_instance() -> int:
    """The instance TESTCLUSTER_INSTANCE names, as the cluster script reads it (0 without it)."""
    return int(os.environ.get("TESTCLUSTER_INSTANCE") or 0)


@functools.lru_cache(maxsize=None)
def _cluster_env(instance: int) -> tuple[tuple[str, str], ...]:
    out = subprocess.run([str(CLUSTER), "env"], check=True, capture_output=True, text=True,
                         env={**os.environ, "TESTCLUSTER_INSTANCE": str(instance)}).stdout
    return tuple((name, shlex.split(value)[0] if value else "")
                 for name, value in re.findall(r"^export ([A-Z_]+)=(.*)$", out, flags=re.MULTILINE)
                 if name != "PATH")


def cluster_env(instance: Optional[int] = None) -> dict[str, str]:
    """The variables `tests/cluster/cluster env` exports (PATH aside), for ``instance`` (by default
    the one TESTCLUSTER_INSTANCE names)."""
    return dict(_cluster_env(default_instance() if instance is None else instance))


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message has the command and what it printed on stderr."""


class Kubectl:
    """kubectl against the test cluster with its admin kubeconfig, in ``namespace`` when given.

    ``env`` holds KUBECONFIG and TESTCLUSTER_KUBECTL (by default `cluster env` of the instance
    TESTCLUSTER_INSTANCE names, read on first use)."""

    def __init__(self, namespace: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> None:
        self.namespace = namespace
        self._env = env

    @property
    def env(self) -> Mapping[str, str]:
        if self._env is None:
            self._env = cluster_env()
        return self._env

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(namespace, self._env)

    def argv(self, namespaced: bool = True) -> list[str]:
        """The command line up to kubectl's own arguments."""
        argv = [self.env.get("TESTCLUSTER_KUBECTL") or "kubectl", "--kubeconfig", self.env["KUBECONFIG"]]
        if namespaced and self.namespace:
            argv += ["-n", self.namespace]
        return argv

    def run(self, *args: str, input: Optional[str] = None, check: bool = True, timeout: float = 120,
            namespaced: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with ``check`` a non-zero exit raises KubectlError."""
        command = [*self.argv(namespaced), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(f"{shlex.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def __call__(self, *args: str, input: Optional[str] = None, check: bool = True, timeout: float = 120,
                 namespaced: bool = True) -> str:
        """Run kubectl; what it printed on stdout."""
        return self.run(*args, input=input, check=check, timeout=timeout, namespaced=namespaced).stdout

    def popen(self, *args: str, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen:
        """Start kubectl without waiting for it (a watch, a port-forward)."""
        return subprocess.Popen([*self.argv(), *args], stdout=stdout, stderr=stderr, text=True)

    def get(self, *args: str, namespaced: bool = True) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self("get", *args, "-o", "json", namespaced=namespaced))

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Apply one object or a list of them (into the namespace, when this kubectl has one)."""
        items = manifest if isinstance(manifest, list) else [manifest]
        self("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def secret(self, name: str) -> dict[str, bytes]:
        """The data of a Secret, decoded."""
        return {key: base64.b64decode(value) for key, value in self.get("secret", name)["data"].items()}

    def certificate(self, secret: str) -> x509.Certificate:
        """The certificate (tls.crt) in a Secret."""
        return x509.load_pem_x509_certificate(self.secret(secret)["tls.crt"])

    def pods(self, selector: str) -> list[dict[str, Any]]:
        """Pods of a label selector that are not on their way out (deleted, draining)."""
        return [p for p in self.get("pods", "-l", selector)["items"] if p["metadata"].get("deletionTimestamp") is None]

    @contextlib.contextmanager
    def port_forward(self, target: str, remote_port: int, timeout: float = 30) -> Iterator[int]:
        """A local port forwarded to ``target`` (svc/NAME, pod/NAME) in the namespace: the host cannot
        reach pods directly. Raises WaitTimeout, with what kubectl printed, when the port does not
        accept connections within ``timeout`` seconds or kubectl exits; the process never outlives
        the block."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryFile("w+") as output:
            process = self.popen("port-forward", target, f"{port}:{remote_port}", stdout=output, stderr=subprocess.STDOUT)
            try:
                def state() -> str:
                    if process.poll() is not None:
                        return f"kubectl exited with {process.returncode}"
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=1):
                            return "accepting"
                    except OSError as error:
                        return f"not accepting: {error}"

                def printed() -> str:
                    output.seek(0)
                    return f"{shlex.join(process.args)} printed:\n{output.read()[-3000:]}"

                what = f"the port-forward to {target}:{remote_port} on 127.0.0.1:{port}"
                seen = wait_until(what, state, timeout, 0.3, diagnostics=printed,
                                  until=lambda seen: seen == "accepting" or seen.startswith("kubectl exited"))
                if seen != "accepting":
                    raise WaitTimeout(f"{what}: {seen}\n{printed()}")
                yield port
            finally:
                stop_process(process, grace=10)


class Cluster:
    """One instance of the test cluster (by default the one TESTCLUSTER_INSTANCE names)."""

    def __init__(self, instance: Optional[int] = None) -> None:
        self.instance = default_instance() if instance is None else instance
        self.process_env = {**os.environ, "TESTCLUSTER_INSTANCE": str(self.instance)}

    def command(self, *args: str, timeout: float = 900) -> str:
        """`tests/cluster/cluster ARGS` for this instance; fails the test when it fails."""
        result = subprocess.run([str(CLUSTER), *args], env=self.process_env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        assert result.returncode == 0, f"cluster {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def status(self) -> subprocess.CompletedProcess[str]:
        """`tests/cluster/cluster status`: exits 0 when the instance is up."""
        return subprocess.run([str(CLUSTER), "status"], env=self.process_env, capture_output=True, text=True,
                              check=False)

    def is_up(self) -> bool:
        return self.status().returncode == 0

    @property
    def env(self) -> dict[str, str]:
        return cluster_env(self.instance)

    def kubectl(self, *args: str, input: Optional[str] = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return Kubectl(env=self.env).run(*args, input=input, check=check, timeout=timeout)

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: Optional[str] = None) -> None:
        Kubectl(namespace, self.env).apply(manifest)

    def get(self, *args: str) -> Any:
        return Kubectl(env=self.env).get(*args)

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLUSTER), "ctr", *args], env=self.process_env, check=True, capture_output=True,
                              text=True)


# -- PostgreSQL, as the backend reaches it ------------------------------------------------------

def postgres_query(kubectl: Kubectl, sql: Optional[str] = None, database: Optional[str] = None,
                   client: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Log in to the PostgreSQL Service of kubectl's namespace through a port-forward, as the backend
    does (verified TLS, the client certificate of its Secret, or ``client``: its tls.crt, tls.key and
    ca.crt), and run ``sql``; the module_utils result (rows, the server certificate). The user is the
    client certificate's CN, as PostgreSQL's cert authentication wants it."""
    # The collection as the virtualenv links it (tests/cluster's own tests do not need it).
    from ansible_collections.backstage.k8s.plugins.module_utils import _postgres_tls

    if client is None:
        client = {key: value.decode() for key, value in kubectl.secret(CLIENT_SECRET).items()}
    with kubectl.port_forward("svc/postgres", 5432) as port:
        return _postgres_tls.connect_and_query(
            "127.0.0.1", port, f"postgres.{kubectl.namespace}.svc.cluster.local", client["ca.crt"],
            client["tls.crt"], client["tls.key"], user=certificate_user(client["tls.crt"]), database=database,
            query=sql)


def certificate_user(certificate_pem: str) -> str:
    """The CN of a client certificate: the database user it logs in as."""
    subject = x509.load_pem_x509_certificate(certificate_pem.encode()).subject
    return str(subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def presented_serial(kubectl: Kubectl) -> int:
    """The serial of the certificate PostgreSQL presents."""
    return postgres_query(kubectl)["server_certificate"]["serial_number"]


def client_certificate_connections(kubectl: Kubectl) -> list[list[Any]]:
    """PostgreSQL's own view (pg_stat_ssl) of its TCP clients: [address, client certificate serial]."""
    return postgres_query(kubectl, "SELECT host(a.client_addr), s.client_serial::text FROM pg_stat_ssl s"
                                   " JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL")["rows"]


# -- HTTP through the Ingress -------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.body[:300]!r})"


def http_request(url: str, method: str = "GET", host: Optional[str] = None, token: Optional[str] = None,
                 body: Any = None, timeout: float = 30) -> Response:
    """One HTTP request (``body`` sent as JSON) with a Host header and a bearer token when given;
    an HTTP error status is a Response too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if host:
        request.add_header("Host", host)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def guest_token(base_url: str, host: Optional[str], wait: float = 60) -> str:
    """Sign in as the guest user through the Ingress, as the portal does, waiting up to ``wait``
    seconds for Backstage to let the guest in."""
    def sign_in() -> Response | str:
        try:
            return http_request(base_url + "/api/auth/guest/refresh", host=host, timeout=10)
        except OSError as error:
            return f"{type(error).__name__}: {error}"

    response = wait_until("guest sign-in through the Ingress", sign_in, wait, 2,
                          until=lambda seen: isinstance(seen, Response) and seen.status == 200)
    assert isinstance(response, Response)
    return response.json()["backstageIdentity"]["token"]


# -- fixtures of the Molecule scenarios on the test cluster --------------------------------------
# A scenario's conftest imports these and defines `scenario_dir`.

@pytest.fixture(scope="session")
def scenario(scenario_dir: Path) -> dict[str, Any]:
    """The scenario's variables (its inventory's group_vars)."""
    return yaml.safe_load((scenario_dir / "inventory" / "group_vars" / "all.yml").read_text())


@pytest.fixture(scope="session")
def namespace(scenario: dict[str, Any]) -> str:
    return scenario["backstage_k8s_namespace"]


@pytest.fixture(scope="session")
def artifacts(scenario_dir: Path) -> Path:
    """artifacts/molecule-SCENARIO."""
    return artifacts_dir(f"molecule-{scenario_dir.name}")
