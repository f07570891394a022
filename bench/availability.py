"""Availability of Backstage through the Ingress while something runs (a certificate rotation).

Signs in as the guest user, then sends GET /api/catalog/entities every 100 ms (each with a 5 s
timeout) for as long as the command runs, and reports how many requests failed (no answer within
the timeout, a broken connection, or not a 200 with a list of entities), by kind, and the longest
gap between two successful answers.

    python3 bench/availability.py --url http://127.0.0.1:18080 --host backstage.localhost -- \
        ansible-playbook backstage.k8s.rotate -e cert_rotation_force=true

Prints one JSON document; exits with the command's status. tests under molecule/rotation import
Probe from here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional

CATALOG_PATH = '/api/catalog/entities?limit=5'
GUEST_PATH = '/api/auth/guest/refresh'


def _get(url: str, host: Optional[str], token: Optional[str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if host:
        request.add_header('Host', host)
    if token:
        request.add_header('Authorization', 'Bearer ' + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def guest_token(base_url: str, host: Optional[str], wait: float = 60) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            status, body = _get(base_url + GUEST_PATH, host, None, 10)
            if status == 200:
                return json.loads(body)['backstageIdentity']['token']
        except OSError:
            status, body = 0, b''
        if time.monotonic() > deadline:
            raise RuntimeError('guest sign-in through the Ingress failed: {0} {1!r}'.format(status, body[:200]))
        time.sleep(2)


@dataclass
class Probe:
    """Requests every ``interval`` seconds from a thread, between start() and stop()."""

    base_url: str
    host: Optional[str] = None
    interval: float = 0.1
    timeout: float = 5.0
    token: Optional[str] = None
    requests: int = 0
    failures: list = field(default_factory=list)
    kinds: dict = field(default_factory=dict)
    longest_gap: float = 0.0
    started: float = 0.0
    stopped: float = 0.0
    _last_ok: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def _one(self) -> None:
        sent = time.monotonic()
        ok, what = False, ''
        try:
            status, body = _get(self.base_url + CATALOG_PATH, self.host, self.token, self.timeout)
            ok = status == 200 and isinstance(json.loads(body), list)
            what = 'HTTP {0}'.format(status)
        except (OSError, ValueError) as exc:
            what = type(exc).__name__ + ': ' + str(exc)[:120]
        if not ok:
            self.kinds[what.split(':')[0]] = self.kinds.get(what.split(':')[0], 0) + 1
        answered = time.monotonic()
        self.requests += 1
        if ok:
            self.longest_gap = max(self.longest_gap, answered - self._last_ok)
            self._last_ok = answered
        else:
            self.failures.append({'at': round(sent - self.started, 2), 'error': what})

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._one()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> 'Probe':
        if self.token is None:
            self.token = guest_token(self.base_url, self.host)
        self.started = self._last_ok = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.stopped = time.monotonic()
        self.longest_gap = max(self.longest_gap, self.stopped - self._last_ok)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            'duration_s': round(self.stopped - self.started, 1),
            'requests': self.requests,
            'failed': len(self.failures),
            'longest_gap_s': round(self.longest_gap, 2),
            'failures_by_kind': dict(sorted(self.kinds.items())),
            'first_failures': self.failures[:10],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--url', required=True, help='the Ingress base URL, e.g. http://127.0.0.1:18080')
    parser.add_argument('--host', help='Host header of the Backstage Ingress rule')
    parser.add_argument('--interval', type=float, default=0.1)
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- command to run while probing')
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('give the command to measure after --')
    probe = Probe(args.url.rstrip('/'), args.host, args.interval).start()
    try:
        status = subprocess.call(command)
    finally:
        result = probe.stop()
    result['command_status'] = status
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write('\n')
    return status


if __name__ == '__main__':
    sys.exit(main())
