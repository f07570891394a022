# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""The Kubernetes connection options of k8s_get and k8s_apply: kubernetes.core's, passed on as they are."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - The kubeconfig, a path or a dict, as kubernetes.core's modules take it; C(K8S_AUTH_KUBECONFIG), then
        C(~/.kube/config), when not given.
      - The other authentication options of kubernetes.core's modules (C(host), C(api_key), C(ca_cert),
        C(client_cert), C(client_key), C(validate_certs), C(proxy), C(impersonate_user), ...) are taken too,
        with the same meaning.
      - The play's C(module_defaults) for kubernetes.core's modules (for example C(group/kubernetes.core.k8s))
        apply, as they would to them.
    type: raw
  context:
    description: The kubeconfig context to use; its current context when not given.
    type: str
"""
