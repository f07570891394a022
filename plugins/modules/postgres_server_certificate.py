#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_server_certificate
short_description: See the certificate a PostgreSQL server presents, and make it reload its configuration
version_added: 0.1.0
description:
  - Connects to PostgreSQL over TLS, verifies its certificate against O(ca_certificate) and
    O(server_name), and returns that certificate's serial number, fingerprint and validity.
  - With O(reload=true) it also logs in as O(user) with the client certificate (PostgreSQL's
    C(cert) authentication) and runs C(SELECT pg_reload_conf()), which makes PostgreSQL re-read
    its configuration and its TLS certificate, key and CA files without dropping a connection.
  - The certificate rotation job uses it to load a rotated server certificate with no downtime,
    and to check which certificate the server really presents.
  - It needs only the Python standard library (no database driver).
author:
  - backstage.k8s maintainers (@backstage-k8s)
extends_documentation_fragment:
  - backstage.k8s.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the certificate is read, but the server is not asked to reload.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run with O(reload=true) asks the server to reload and reports a change.
options:
  host:
    description: Address (DNS name or IP) to connect to.
    type: str
    required: true
  port:
    description: TCP port of the server.
    type: int
    default: 5432
  server_name:
    description:
      - The name the server's certificate must carry in its SANs (TLS server name indication and
        host name check). Defaults to O(host).
    type: str
  ca_certificate:
    description: The CA certificate(s) the server's certificate must chain to, PEM encoded.
    type: str
    required: true
  client_certificate:
    description:
      - The client certificate, PEM encoded, whose CN is O(user). Required with O(reload=true).
    type: str
  client_key:
    description: The private key of O(client_certificate), PEM encoded, unencrypted.
    type: str
  user:
    description: The PostgreSQL user to log in as; PostgreSQL's C(cert) method maps it to the certificate's CN.
    type: str
    default: postgres
  database:
    description: Database to connect to. Defaults to O(user).
    type: str
  reload:
    description: Ask the server to reload its configuration (C(SELECT pg_reload_conf())).
    type: bool
    default: false
  timeout:
    description: Seconds to wait to connect and for each answer.
    type: float
    default: 10
notes:
  - Python's ssl module loads a client key only from a file; the key is written to a private
    temporary directory (mode 0700, file mode 0600) for the duration of the handshake setup and
    removed at once.
seealso:
  - module: backstage.k8s.cert_cn_check
  - name: PostgreSQL SSL support
    description: The server re-reads its SSL files on a configuration reload.
    link: https://www.postgresql.org/docs/current/ssl-tcp.html
"""

EXAMPLES = r"""
- name: Read the certificate PostgreSQL presents
  backstage.k8s.postgres_server_certificate:
    host: postgres.backstage.svc.cluster.local
    ca_certificate: "{{ lookup('ansible.builtin.file', 'ca.crt') }}"
  register: served

- name: Tell PostgreSQL to load its rotated certificate
  backstage.k8s.postgres_server_certificate:
    host: postgres.backstage.svc.cluster.local
    ca_certificate: "{{ client_secret.data['ca.crt'] | b64decode }}"
    client_certificate: "{{ client_secret.data['tls.crt'] | b64decode }}"
    client_key: "{{ client_secret.data['tls.key'] | b64decode }}"
    user: postgres
    reload: true
"""

RETURN = r"""
serial_number:
  description: Serial number of the certificate the server presented.
  returned: success
  type: int
  sample: 1234567890123456789
fingerprint_sha256:
  description: SHA-256 fingerprint of that certificate, colon-separated lower-case hex.
  returned: success
  type: str
  sample: "e7:b2:d5:f3:99:3c:cf:24:88:31:99:dd:10:2d:cc:3e:fd:15:fe:ae:aa:6f:11:ba:a5:03:dc:fc:aa:bf:d4:b7"
common_name:
  description: CN of that certificate's subject.
  returned: success
  type: str
  sample: postgres
not_before:
  description: Start of its validity, as Python's ssl module prints it.
  returned: success
  type: str
  sample: Nov 23 23:40:32 2026 GMT
not_after:
  description: End of its validity, as Python's ssl module prints it.
  returned: success
  type: str
  sample: Jan  7 23:40:32 2027 GMT
tls_version:
  description: TLS version of the connection.
  returned: success
  type: str
  sample: TLSv1.3
reloaded:
  description: Whether the server was asked to reload and said it would.
  returned: success
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.backstage.k8s.plugins.module_utils._postgres_tls import (
    PostgresTlsError,
    connect_and_query,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type='str', required=True),
            port=dict(type='int', default=5432),
            server_name=dict(type='str'),
            ca_certificate=dict(type='str', required=True),
            client_certificate=dict(type='str'),
            client_key=dict(type='str', no_log=True),
            user=dict(type='str', default='postgres'),
            database=dict(type='str'),
            reload=dict(type='bool', default=False),
            timeout=dict(type='float', default=10.0),
        ),
        required_together=[('client_certificate', 'client_key')],
        required_if=[('reload', True, ('client_certificate', 'client_key'))],
        supports_check_mode=True,
    )
    params = module.params
    reload = params['reload'] and not module.check_mode
    try:
        result = connect_and_query(
            host=params['host'],
            port=params['port'],
            server_name=params['server_name'] or params['host'],
            ca_certificate=params['ca_certificate'],
            client_certificate=params['client_certificate'],
            client_key=params['client_key'],
            user=params['user'],
            database=params['database'],
            query='SELECT pg_reload_conf()' if reload else None,
            timeout=params['timeout'],
        )
    except PostgresTlsError as exc:
        module.fail_json(msg=str(exc))
    reloaded = bool(reload and result['rows'] == [['t']])
    if reload and not reloaded:
        module.fail_json(msg='PostgreSQL did not accept pg_reload_conf(): it returned {0!r}'.format(result['rows']))
    module.exit_json(changed=bool(params['reload']), reloaded=reloaded, **result['server_certificate'])


if __name__ == '__main__':
    main()
