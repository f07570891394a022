#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_get
short_description: Read Kubernetes objects in the controller's process
version_added: 0.1.0
description:
  - Reads one object by name, or the objects that match labels, as M(kubernetes.core.k8s_info) does,
    and returns them in the same C(resources) list (empty when nothing matches).
  - With a local connection it runs in the controller's process with kubernetes.core's API client,
    which is imported once per playbook run; a module run would start a Python process and import
    the client for each read.
  - With any other connection, or without the kubernetes Python library on the controller,
    M(kubernetes.core.k8s_info) runs instead with the same arguments.
author:
  - backstage.k8s maintainers (@backstage-k8s)
extends_documentation_fragment:
  - backstage.k8s.attributes
  - backstage.k8s.kubernetes_auth
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    support: full
    details:
      - It only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  api_version:
    description: The object's apiVersion.
    type: str
    default: v1
    aliases: [api, version]
  kind:
    description: The object's kind.
    type: str
    required: true
  name:
    description: The object's name. Without it, every object of the kind (in O(namespace)) matching O(label_selectors).
    type: str
  namespace:
    description: The namespace of a namespaced kind.
    type: str
  label_selectors:
    description: Label selectors (C(key=value), C(key!=value), C(key in (a,b)), ...), all of which must match.
    type: list
    elements: str
    default: []
requirements:
  - kubernetes >= 24.2.0 (on the controller, or where kubernetes.core.k8s_info runs)
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read the CA Secret
  backstage.k8s.k8s_get:
    kind: Secret
    namespace: backstage
    name: backstage-ca
  register: ca_secret
  no_log: true

- name: List the StorageClasses
  backstage.k8s.k8s_get:
    api_version: storage.k8s.io/v1
    kind: StorageClass
  register: storage_classes
"""

RETURN = r"""
resources:
  description: The objects found, each as the API returned it; empty when none matched.
  returned: success
  type: list
  elements: dict
api_found:
  description: Whether the kind exists in the cluster's API.
  returned: success
  type: bool
"""
