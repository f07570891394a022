#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_apply
short_description: Apply Kubernetes objects, at once when they are already applied and ready
version_added: 0.1.0
description:
  - Takes the arguments of M(kubernetes.core.k8s) and applies the objects in O(definition) with it,
    unless nothing would change, which it decides in the controller's process.
  - With a local connection, O(state=present), O(apply=true) and no options besides those listed here,
    it reads each object with kubernetes.core's API client (imported once per playbook run). When every
    object exists, kubernetes.core's apply patch for it is empty (the three-way merge of its last applied
    configuration, O(definition) and the live object, so a change made by hand is seen too), and, with
    O(wait), kubernetes.core's readiness condition for its kind holds, it returns what
    M(kubernetes.core.k8s) would return, unchanged, without a module run.
  - In every other case M(kubernetes.core.k8s) runs with the same arguments, and creates, patches and
    waits as usual.
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
      - Nothing to change is reported as such; anything else goes to M(kubernetes.core.k8s) in check mode.
  diff_mode:
    support: full
    details:
      - As M(kubernetes.core.k8s); an unchanged apply has no difference to show.
  idempotent:
    support: full
options:
  definition:
    description: The objects to apply, as a list of dicts (or one dict), each with apiVersion, kind and metadata.
    type: raw
    required: true
  state:
    description: Only C(present) is decided here; other states go to M(kubernetes.core.k8s).
    type: str
    default: present
  apply:
    description: Apply the objects (client-side apply, as C(kubectl apply)). Required for the check here.
    type: bool
    default: false
  wait:
    description: Wait until every object is ready, as M(kubernetes.core.k8s) does.
    type: bool
    default: false
  wait_sleep:
    description: Seconds between two looks while M(kubernetes.core.k8s) waits.
    type: int
    default: 5
  wait_timeout:
    description: Seconds M(kubernetes.core.k8s) waits at most.
    type: int
    default: 120
requirements:
  - kubernetes >= 24.2.0 (on the controller, or where kubernetes.core.k8s runs)
notes:
  - Any other option of M(kubernetes.core.k8s) can be given; the module then always runs.
seealso:
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Apply the app's objects and wait for the rollouts
  backstage.k8s.k8s_apply:
    state: present
    apply: true
    definition: "{{ query('ansible.builtin.template', 'configmap.yaml.j2', 'deployment.yaml.j2') | map('from_yaml') | list }}"
    wait: true
    wait_sleep: 1
"""

RETURN = r"""
result:
  description:
    - As M(kubernetes.core.k8s) returns it. For one object, the object; for several, C(results), a list
      with one entry (C(changed), C(method), C(result)) per object.
  returned: success
  type: complex
  contains:
    results:
      description: For several objects, one entry per object, each with C(changed), C(method) and C(result).
      returned: several objects
      type: list
      elements: dict
method:
  description: C(apply) for one object.
  returned: success, one object
  type: str
"""
