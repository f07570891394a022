# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Usage: origin.py ROOT CERT KEY PORT_FILE

The internet as microk8s 1.35's ingress addon sees it here: an HTTPS proxy on 127.0.0.1 that
answers a CONNECT to any host with a directory under ROOT itself, over TLS with CERT/KEY (a
certificate for those hosts, signed by a CA the clients trust through SSL_CERT_FILE), serving
ROOT/HOST/PATH. Helm's `repo add`/`upgrade` and kubectl's `apply -f https://...` reach it through
HTTPS_PROXY, unchanged. Other hosts are refused (403): nothing leaves the machine.

Writes the port it listens on to PORT_FILE; exits when the process that started it is gone.
"""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path


class OriginHandler(http.server.BaseHTTPRequestHandler):
    """The HTTPS side: GET/HEAD of a file under ROOT/HOST."""

    root: Path = Path('/nonexistent')

    def _file(self) -> Path | None:
        host = (self.headers.get('Host') or '').split(':')[0]
        path = self.path.split('?', 1)[0]
        base = (self.root / host).resolve()
        target = (base / path.lstrip('/')).resolve()
        if not host or base.parent != self.root.resolve() or not target.is_relative_to(base) or not target.is_file():
            return None
        return target

    def _answer(self, body: bool) -> None:
        target = self._file()
        if target is None:
            self.send_error(404)
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write('origin: %s %s\n' % (self.headers.get('Host', '-') if hasattr(self, 'headers') else '-',
                                              format % args))


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """The proxy side: CONNECT to a served host becomes a TLS session with OriginHandler."""

    context: ssl.SSLContext

    def do_CONNECT(self) -> None:  # noqa: N802
        host = self.path.rsplit(':', 1)[0]
        if not host or '/' in host or not (OriginHandler.root / host).is_dir():
            self.send_error(403, 'origin: %s is not served here' % host)
            return
        self.send_response(200, 'Connection established')
        self.end_headers()
        self.wfile.flush()
        try:
            tls = self.context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as err:
            sys.stderr.write('origin: TLS with the client for %s failed: %s\n' % (host, err))
            self.close_connection = True
            return
        OriginHandler(tls, self.client_address, self.server)
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self.send_error(403, 'origin: only HTTPS through CONNECT')


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def main() -> int:
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__ or '')
        return 2
    root, cert, key, port_file = sys.argv[1:]
    OriginHandler.root = Path(root)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    ProxyHandler.context = context
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), ProxyHandler)
    server.daemon_threads = True
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    tmp = port_file + '.tmp'
    Path(tmp).write_text(str(server.server_address[1]))
    os.replace(tmp, port_file)
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
