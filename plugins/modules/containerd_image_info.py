#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_image_info
short_description: Tell which of several images a containerd (or a registry) does not have yet
version_added: 0.1.0
description:
  - For each image of O(images), what M(backstage.k8s.containerd_image) would find in check mode
    (its digest, size, the digest the target has under that name, and whether that is the same
    content), all in one run of the module and with one C(ctr images check) for every image, so
    that a list of images already imported is confirmed in a fraction of a second.
  - An image is up to date only when the containerd has its name pointing at exactly its digest
    (the manifest digest of an OCI archive, the image ID otherwise) and all its content. Archives
    are read only as far as their C(index.json) or C(manifest.json), never their layers.
  - Changes nothing.
author:
  - backstage.k8s maintainers (@backstage-k8s)
extends_documentation_fragment:
  - backstage.k8s.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  images:
    description:
      - The images to look for, each as M(backstage.k8s.containerd_image) takes them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The image name with a real tag, as pods refer to it.
        type: str
        required: true
      archive:
        description:
          - Path of an OCI image layout or docker-format archive. Exactly one of O(images[].archive) and O(images[].source).
        type: path
      source:
        description:
          - Take the image from the local docker or podman image store. Exactly one of O(images[].archive) and O(images[].source).
        type: str
        choices: [docker, podman]
  ctr_command:
    description:
      - The command that runs C(ctr) against the target containerd in the C(k8s.io) namespace, as a list.
    type: list
    elements: str
    default: [microk8s, ctr]
  method:
    description:
      - V(ctr) compares with the containerd, V(registry) with O(registry).
    type: str
    choices: [ctr, registry]
    default: ctr
  registry:
    description:
      - With O(method=registry), the registry to compare with.
    type: str
    default: localhost:32000
  platform:
    description:
      - The platform (C(os/architecture), optionally C(/variant)) whose manifest is compared when the
        target holds a multi-platform image index, for example V(linux/arm64).
      - Empty for the platform of the containerd of O(ctr_command), which runs the cluster node's
        images (C(ctr plugins ls), the CRI plugin's). It is read only when an index is compared.
    type: str
    default: ""
notes:
  - Fails on the first image it cannot describe (a name without a real tag, an archive that is
    not an image, an image docker or podman does not have), naming it.
seealso:
  - module: backstage.k8s.containerd_image
"""

EXAMPLES = r"""
- name: Find which images microk8s does not have yet
  backstage.k8s.containerd_image_info:
    images:
      - name: localhost/backstage/backend:1.0
        archive: /srv/images/backend.tar
      - name: backstage-frontend:1.0
        source: docker
  register: plan

- name: Import only those
  backstage.k8s.containerd_image:
    name: "{{ item.requested.name }}"
    archive: "{{ item.requested.archive | default(omit, true) }}"
    source: "{{ item.requested.source | default(omit, true) }}"
  loop: "{{ plan.images | rejectattr('up_to_date') }}"
"""

RETURN = r"""
platform:
  description: The platform an image index was followed to, given or read from the containerd.
  returned: when an image index was compared, or O(platform) was given
  type: str
  sample: linux/arm64/v8
images:
  description: One entry per image of O(images), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    requested:
      description: The image as given in O(images).
      type: dict
      sample: {name: localhost/backstage/backend:1.0, archive: /srv/images/backend.tar, source: null}
    name:
      description: The normalized name the image has in the containerd (or the registry).
      type: str
      sample: localhost/backstage/backend:1.0
    digest:
      description: The digest that identifies the image (see RV(images[].digest_kind)).
      type: str
      sample: sha256:22441c70e5792fffb2d15ecd2fa4ed1644afb280bb421d39eaec3209f9df77c7
    digest_kind:
      description: V(manifest) for the manifest digest of an OCI archive, V(config) for the image ID.
      type: str
      sample: manifest
    previous_digest:
      description: The digest of the same kind the target has under RV(images[].name), or V(null).
      type: str
      sample: null
    up_to_date:
      description: Whether the target has RV(images[].name) with exactly this content.
      type: bool
      sample: false
    size:
      description: Size in bytes of the archive, or of the image as docker or podman report it.
      type: int
      sample: 1095680
    size_human:
      description: RV(images[].size) for people.
      type: str
      sample: 1.0 MiB
"""

import traceback
from typing import Any, Dict, List, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._containerd_client import (
    Containerd,
    compare,
    describe,
)
from ansible_collections.backstage.k8s.plugins.module_utils._containerd_image import ImageError, Reference


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                archive=dict(type='path'),
                source=dict(type='str', choices=['docker', 'podman']),
            ), mutually_exclusive=[['archive', 'source']], required_one_of=[['archive', 'source']]),
            ctr_command=dict(type='list', elements='str', default=['microk8s', 'ctr']),
            method=dict(type='str', choices=['ctr', 'registry'], default='ctr'),
            registry=dict(type='str', default='localhost:32000'),
            platform=dict(type='str', default=''),
        ),
        supports_check_mode=True,
    )
    params = module.params
    images = []  # type: List[Dict[str, Any]]
    result = {}  # type: Dict[str, Any]
    try:
        described = []  # type: List[Tuple[Dict[str, Any], Reference]]
        for requested in params['images']:
            entry = dict(requested=requested)  # type: Dict[str, Any]
            images.append(entry)
            try:
                wanted = describe(module, requested['name'], requested['archive'], requested['source'], params['method'], entry)[0]
            except ImageError as exc:
                raise ImageError('{0}: {1}'.format(requested['name'], to_native(exc)))
            described.append((entry, wanted))
        containerd = Containerd(module, params['ctr_command'], params['platform'])
        states = containerd.states([wanted.name for entry, wanted in described]) if params['method'] == 'ctr' else None
        for entry, wanted in described:
            compare(containerd, wanted, params['method'], params['registry'], entry, states)
        if containerd.platform_read():
            result['platform'] = containerd.platform_read()
    except ImageError as exc:
        module.fail_json(msg=to_native(exc), images=images)
    except (OSError, ValueError, KeyError) as exc:
        module.fail_json(msg='unexpected error: {0}'.format(to_native(exc)), exception=traceback.format_exc(), images=images)
    module.exit_json(changed=False, images=images, **result)


if __name__ == '__main__':
    main()
