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
  - With O(objects), several reads in one task, all at once; each read's objects come back in
    RV(results), in the order of O(objects), as a loop's results would.
  - With O(secret_keys), a Secret comes back with only those keys of its data. A task that needs a
    certificate from a Secret that also holds a private key then gets no key, and needs no C(no_log).
  - With a local connection it runs in the controller's process with kubernetes.core's API client,
    which is imported once per playbook run; a module run would start a Python process and import
    the client for each read.
  - With any other connection, or without the kubernetes Python library on the controller,
    M(kubernetes.core.k8s_info) runs instead with the same arguments, once per read.
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
    description:
      - The object's kind.
      - One of O(kind) and O(objects) is required.
    type: str
  name:
    description: The object's name. Without it, every object of the kind (in O(namespace)) matching O(label_selectors).
    type: str
  namespace:
    description: The namespace of a namespaced kind; with O(objects), of each read that names none.
    type: str
  label_selectors:
    description: Label selectors (C(key=value), C(key!=value), C(key in (a,b)), ...), all of which must match.
    type: list
    elements: str
    default: []
  objects:
    description:
      - Several reads in one task, read all at once, instead of O(kind), O(name) and O(label_selectors).
      - Each read's objects are in RV(results), in this order.
    type: list
    elements: dict
    suboptions:
      api_version:
        description: The objects' apiVersion.
        type: str
        default: v1
        aliases: [api, version]
      kind:
        description: The objects' kind.
        type: str
        required: true
      name:
        description: The object's name. Without it, every object of the kind matching O(objects[].label_selectors).
        type: str
      namespace:
        description: The namespace of a namespaced kind, when not O(namespace).
        type: str
      label_selectors:
        description: Label selectors, all of which must match.
        type: list
        elements: str
        default: []
  secret_keys:
    description:
      - The keys of a Secret's C(data) to return (for example C(tls.crt) and C(ca.crt)); the others, and
        the C(kubectl.kubernetes.io/last-applied-configuration) annotation, which would repeat them,
        are removed in the controller before the task's result exists.
      - Every key when not given. An empty list returns the Secrets without their data (to know
        whether they exist).
      - Applies to the reads of kind C(Secret) (apiVersion C(v1)); other objects come back whole.
    type: list
    elements: str
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

- name: Read a client certificate (no private key) and the Deployments that use it, at once
  backstage.k8s.k8s_get:
    namespace: backstage
    objects:
      - kind: Secret
        name: backstage-postgres-client-tls
      - api_version: apps/v1
        kind: Deployment
        label_selectors: [app.kubernetes.io/component=backend]
    secret_keys: [tls.crt, ca.crt]
  register: reads
  # reads.results[0].resources: the Secret with tls.crt and ca.crt only; reads.results[1]: the Deployments

- name: List the StorageClasses
  backstage.k8s.k8s_get:
    api_version: storage.k8s.io/v1
    kind: StorageClass
  register: storage_classes
"""

RETURN = r"""
resources:
  description: The objects found, each as the API returned it (a Secret as O(secret_keys) leaves it); empty when none matched.
  returned: success, without O(objects)
  type: list
  elements: dict
api_found:
  description: Whether the kind exists in the cluster's API.
  returned: success, without O(objects)
  type: bool
results:
  description: One per read of O(objects), in its order.
  returned: success, with O(objects)
  type: list
  elements: dict
  contains:
    item:
      description: The read, as given in O(objects) (its namespace O(namespace) unless it names one).
      type: dict
      returned: always
    resources:
      description: The objects it found, as in RV(resources).
      type: list
      elements: dict
      returned: always
    api_found:
      description: Whether its kind exists in the cluster's API.
      type: bool
      returned: always
"""
