#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cert_cn_check
short_description: Check that a client certificate will authenticate a PostgreSQL user
version_added: 0.1.0
description:
  - Reads a PEM client certificate and checks what PostgreSQL's C(cert) authentication checks
    before it lets a client in as a database user.
  - The subject must have exactly one CN and it must be exactly O(user). The comparison is
    exact, as PostgreSQL's is, so case and leading or trailing whitespace matter.
  - The certificate must be valid now, and have at least O(min_days_left) whole days left.
  - When a CA certificate is given, the certificate must have been issued by it (issuer name
    equal to the CA's subject and signature made by the CA's key), and the CA must be a CA
    (C(basicConstraints) C(CA:TRUE)) that is itself valid now.
  - On success it returns the certificate's CN, serial, issuer and validity. It fails with a
    message that says what is wrong (naming the CN and the user when they differ) otherwise,
    and the failure result still carries the fields that could be read.
  - It only reads; it never changes anything.
author:
  - backstage.k8s maintainers (@backstage-k8s)
extends_documentation_fragment:
  - backstage.k8s.attributes
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details:
      - When neither O(certificate_path) nor O(ca_certificate_path) is given, the check runs in the
        controller's process (a pure function of its arguments, so no module round trip); files named
        by a path are read on the managed node, by the module.
  check_mode:
    support: full
    details:
      - The module runs the same checks in check mode; it never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  certificate:
    description:
      - The client certificate, PEM encoded.
      - If it holds a chain, the first certificate (the leaf) is checked.
      - Exactly one of O(certificate) and O(certificate_path) is required.
    type: str
  certificate_path:
    description:
      - Path of a file on the managed node holding the PEM client certificate.
      - If it holds a chain, the first certificate (the leaf) is checked.
      - Exactly one of O(certificate) and O(certificate_path) is required.
    type: path
  user:
    description:
      - The PostgreSQL user the certificate must authenticate as, that is the exact CN it must have.
    type: str
    required: true
    aliases:
      - database_user
  ca_certificate:
    description:
      - The CA certificate PostgreSQL trusts (its C(ssl_ca_file)), PEM encoded.
      - May hold several certificates; the certificate must be issued by one of them.
      - When neither O(ca_certificate) nor O(ca_certificate_path) is given, the issuer is not checked.
    type: str
  ca_certificate_path:
    description:
      - Path of a file on the managed node holding the CA certificate(s), PEM encoded.
      - May hold several certificates; the certificate must be issued by one of them.
    type: path
  min_days_left:
    description:
      - How many whole days of validity the certificate must have left.
      - V(0) only requires that the certificate has not expired.
    type: int
    default: 0
notes:
  - Certificates are public, but a private key passed by mistake must not leak, so it is
    recognised and reported without being echoed, and the values of O(certificate) and
    O(ca_certificate) are not logged.
  - Times are returned in UTC in the ASN.1 C(YYYYMMDDHHMMSSZ) form that
    M(community.crypto.x509_certificate_info) uses.
requirements:
  - cryptography >= 3.3 (signature checks of RSASSA-PSS certificates need cryptography >= 40)
seealso:
  - module: community.crypto.x509_certificate_info
  - name: PostgreSQL certificate authentication
    description: How PostgreSQL maps a client certificate to a database user.
    link: https://www.postgresql.org/docs/current/auth-cert.html
"""

EXAMPLES = r"""
- name: Check the Backstage client certificate before deploying it
  backstage.k8s.cert_cn_check:
    certificate_path: /etc/backstage/tls/tls.crt
    ca_certificate_path: /etc/backstage/tls/ca.crt
    user: postgres
    min_days_left: 15
  register: client_cert

- name: Show when it expires
  ansible.builtin.debug:
    msg: "{{ client_cert.cn }} expires {{ client_cert.not_after }} ({{ client_cert.days_left }} days)"

- name: Check a certificate held in a variable, for example read from a Kubernetes Secret
  backstage.k8s.cert_cn_check:
    certificate: "{{ secret.data['tls.crt'] | b64decode }}"
    ca_certificate: "{{ secret.data['ca.crt'] | b64decode }}"
    user: postgres
"""

RETURN = r"""
cn:
  description: The CN of the certificate's subject, or V(null) when it has none or several.
  returned: always, unless the certificate could not be read
  type: str
  sample: postgres
common_names:
  description: Every CN of the certificate's subject, in order.
  returned: always, unless the certificate could not be read
  type: list
  elements: str
  sample: [postgres]
subject:
  description: The certificate's subject as an RFC 4514 string.
  returned: always, unless the certificate could not be read
  type: str
  sample: CN=postgres
serial:
  description: The certificate's serial number.
  returned: always, unless the certificate could not be read
  type: int
  sample: 1234567890123456789
issuer:
  description: The certificate's issuer as an RFC 4514 string.
  returned: always, unless the certificate could not be read
  type: str
  sample: CN=backstage-k8s CA
not_before:
  description: Start of the validity period, UTC, ASN.1 C(YYYYMMDDHHMMSSZ) form.
  returned: always, unless the certificate could not be read
  type: str
  sample: "20260101000000Z"
not_after:
  description: End of the validity period, UTC, ASN.1 C(YYYYMMDDHHMMSSZ) form.
  returned: always, unless the certificate could not be read
  type: str
  sample: "20260215000000Z"
days_left:
  description: Whole days until O(certificate) expires, rounded down; negative once it has expired.
  returned: always, unless the certificate could not be read
  type: int
  sample: 44
matches:
  description:
    - Whether the certificate has exactly one CN and it is exactly O(user).
    - Always V(true) when the module succeeds; useful in the result of a failed check.
  returned: always, unless the certificate could not be read
  type: bool
  sample: true
problems:
  description: Every reason the certificate would be refused, one sentence each. Empty on success.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.backstage.k8s.plugins.module_utils._certificate import (
    CN_CHECK_ARGUMENT_SPEC,
    CN_CHECK_MUTUALLY_EXCLUSIVE,
    CN_CHECK_REQUIRED_ONE_OF,
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    cn_check,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=CN_CHECK_ARGUMENT_SPEC,
        mutually_exclusive=CN_CHECK_MUTUALLY_EXCLUSIVE,
        required_one_of=CN_CHECK_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=CRYPTOGRAPHY_IMPORT_ERROR)

    result = cn_check(module.params)
    if result.pop('failed', False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
