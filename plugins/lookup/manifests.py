# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
name: manifests
author:
  - backstage.k8s maintainers (@backstage-k8s)
short_description: Kubernetes objects rendered from a role's manifest templates
version_added: 0.1.0
description:
  - Renders each template file with the task's variables, as P(ansible.builtin.template#lookup) does, and parses the
    result as YAML, whole objects, one per YAML document of a file.
  - P(ansible.builtin.template#lookup) copies every variable of the host for each file it renders (a deep copy, which
    on a play with many roles takes longer than the rendering); this lookup renders with the variables as they are, so
    that a task applying a role's objects does not pay one copy per object.
  - The files of one call are rendered together, each in a scope of its own (a variable one file sets does not
    reach the next), so that a role variable several of them read is rendered once, not once per file.
  - The templates see the task's variables and O(template_vars), not the C(template_*) variables that
    P(ansible.builtin.template#lookup) adds.
options:
  _terms:
    description:
      - Names of the template files, found as P(ansible.builtin.template#lookup) finds them (the role's
        C(templates) directory first).
    required: true
    type: list
    elements: str
  role:
    description:
      - Find the files in the C(templates) directory of this role of the backstage.k8s collection (its short name,
        for example C(namespace)) instead of the calling role's, so that roles share one template without a task
        of their own to render it.
    type: str
  template_vars:
    description: Variables the templates see on top of the task's.
    type: dict
    default: {}
  text:
    description:
      - Return each file's rendered text instead of its objects, for the configuration files that go into an object.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Apply the objects of a role in one task
  backstage.k8s.k8s_apply:
    state: present
    apply: true
    definition: "{{ query('backstage.k8s.manifests', 'service.yaml.j2', 'deployment.yaml.j2') }}"

- name: Render the Namespace object of the namespace role from another role's task
  ansible.builtin.set_fact:
    namespace: "{{ query('backstage.k8s.manifests', 'namespace.yaml.j2', role='namespace',
                         template_vars={'namespace_name': 'backstage'}) | first }}"

- name: Render a configuration file with a variable of its own
  ansible.builtin.set_fact:
    config: "{{ lookup('backstage.k8s.manifests', 'app.conf.j2', text=true, template_vars={'port': 8080}) }}"
"""

RETURN = r"""
_list:
  description:
    - The objects, in the order of the names and, within a file, of its YAML documents.
    - With O(text), the rendered text of each file.
  type: list
  elements: raw
"""

import os

import yaml

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

# libyaml's loader when PyYAML has it: parsing the objects in C is several times faster.
_SafeLoader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)

# The collection's own roles, for the role option: this file is plugins/lookup/manifests.py.
_ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'roles')
# Between two files' texts in the one rendering of several.
_FILE_BREAK = '\n#--- backstage.k8s.manifests: next file ---\n'


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        extra = self.get_option('template_vars')
        as_text = self.get_option('text')
        role = self.get_option('role')
        templar = self._templar.copy_with_new_env(available_variables=dict(variables, **extra) if extra else variables)
        if not terms:
            return []
        sources = []
        for name in terms:
            if role:
                path = os.path.join(_ROLES_DIR, role, 'templates', name)
                if os.path.basename(role) != role or not os.path.isfile(path):
                    raise AnsibleLookupError('the template {0} was not found in the templates directory of the role {1}'
                                             ' of backstage.k8s'.format(name, role))
            else:
                path = self.find_file_in_search_path(variables, 'templates', name)
            if not path:
                raise AnsibleLookupError('the template {0} was not found in the templates directories'.format(name))
            # Each file in a scope of its own ({% set %} stays in it); '+%}' keeps the newline after the tag.
            sources.append('{% with +%}' + self._loader.get_text_file_contents(path) + '{% endwith +%}')
        # One rendering for all files: a role variable they read is rendered once, not once per file.
        rendered_files = templar.template(trust_as_template(_FILE_BREAK.join(sources)),
                                          escape_backslashes=False).split(_FILE_BREAK)
        if len(rendered_files) != len(terms):
            raise AnsibleLookupError('the templates {0} render the text that separates them'.format(', '.join(terms)))
        objects = []
        for name, rendered in zip(terms, rendered_files):
            if as_text:
                objects.append(rendered)
                continue
            try:
                manifests = [document for document in yaml.load_all(rendered, Loader=_SafeLoader) if document is not None]
            except yaml.YAMLError as exc:
                raise AnsibleLookupError('the template {0} does not render to YAML: {1}'.format(name, to_native(exc)))
            if not manifests or not all(isinstance(manifest, dict) for manifest in manifests):
                raise AnsibleLookupError('the template {0} renders to something other than objects (mappings): {1!r}'
                                         .format(name, manifests))
            objects.extend(manifests)
        return objects
