# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""backstage.k8s.manifests renders a role's templates as ansible.builtin.template does (the same
objects, the same text), without the copy of every variable, and says what is wrong with a
template that is missing or renders to something other than objects. Runs a real ansible-playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')

TEMPLATES = {
    'objects.yaml.j2': (
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ app_name }}\n  labels: {{ app_labels | to_json }}\n'
        'data:\n  mode: "0600"\n  replicas: "{{ replicas }}"\n'
        '---\n'
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ app_name }}\nspec:\n  ports:\n'
        '{% for port in ports %}\n    - port: {{ port }}\n{% endfor %}\n'),
    'app.conf.j2': 'listen {{ ports | first }}\nname = {{ app_name }}{{ suffix | default("") }}\n\n',
    'list.yaml.j2': '- {{ app_name }}\n',
    # Sets a name the next file reads from the play: each file keeps its own {% set %}.
    'shadowing.yaml.j2': '{% set app_name = "other" %}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ app_name }}\n',
    'leading.conf.j2': '\n{% if true %}\nfirst\n{% endif %}\n\n',
    'broken.yaml.j2': 'a: b: c\n',
    # Holds the line the lookup puts between the files of one call.
    'separator.yaml.j2': 'a: b\n#--- backstage.k8s.manifests: next file ---\nc: d\n',
}

TASKS = '''
- name: Render with both lookups
  ansible.builtin.set_fact:
    from_manifests: "{{ query('backstage.k8s.manifests', 'objects.yaml.j2') }}"
    from_builtin: "{{ lookup('ansible.builtin.template', 'objects.yaml.j2') | ansible.builtin.from_yaml_all | list }}"
    text_manifests: "{{ lookup('backstage.k8s.manifests', 'app.conf.j2', text=true, template_vars={'suffix': '-x'}) }}"
    text_builtin: "{{ lookup('ansible.builtin.template', 'app.conf.j2', template_vars={'suffix': '-x'}) }}"

- name: Render several files in one call
  ansible.builtin.set_fact:
    several_manifests: "{{ query('backstage.k8s.manifests', 'shadowing.yaml.j2', 'objects.yaml.j2') }}"
    several_builtin: >-
      {{ lookup('ansible.builtin.template', 'shadowing.yaml.j2') | ansible.builtin.from_yaml_all | list
         + lookup('ansible.builtin.template', 'objects.yaml.j2') | ansible.builtin.from_yaml_all | list }}
    several_text: "{{ query('backstage.k8s.manifests', 'leading.conf.j2', 'app.conf.j2', text=true) }}"
    several_text_builtin: "{{ [lookup('ansible.builtin.template', 'leading.conf.j2'), lookup('ansible.builtin.template', 'app.conf.j2')] }}"
    no_manifests: "{{ query('backstage.k8s.manifests') }}"
    # A template of another role of the collection: the namespace role's, from this role.
    namespace: >-
      {{ query('backstage.k8s.manifests', 'namespace.yaml.j2', role='namespace',
               template_vars={'namespace_name': 'demo-ns'}) }}

- name: Compare
  ansible.builtin.assert:
    that:
      - from_manifests == from_builtin
      - from_manifests | length == 2
      - from_manifests[0].data.mode == '0600'
      - from_manifests[1].spec.ports | map(attribute='port') | list == [8080, 9090]
      - text_manifests == text_builtin
      - text_manifests == 'listen 8080\\nname = demo-x\\n\\n'
      - suffix is not defined
      - several_manifests == several_builtin
      - several_manifests | map(attribute='metadata.name') | list == ['other', 'demo', 'demo']
      - several_text == several_text_builtin
      - several_text[0] == '\\nfirst\\n\\n'
      - no_manifests == []
      - namespace | length == 1
      - namespace[0].kind == 'Namespace' and namespace[0].metadata.name == 'demo-ns'
      - namespace[0].metadata.labels['pod-security.kubernetes.io/enforce'] == 'restricted'
'''


@pytest.fixture(scope='module')
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('manifests')
    role = root / 'roles' / 'demo'
    (role / 'templates').mkdir(parents=True)
    (role / 'tasks').mkdir()
    for name, content in TEMPLATES.items():
        (role / 'templates' / name).write_text(content)
    (role / 'tasks' / 'main.yml').write_text('---' + TASKS)
    (role / 'tasks' / 'one.yml').write_text(
        '---\n- name: Render one\n  ansible.builtin.debug:\n'
        "    msg: \"{{ query('backstage.k8s.manifests', template) }}\"\n")
    return root


def run(workdir: Path, play_tasks: str) -> subprocess.CompletedProcess:
    playbook = workdir / 'play.yml'
    playbook.write_text(
        '- hosts: localhost\n  connection: local\n  gather_facts: false\n'
        '  vars:\n    app_name: demo\n    app_labels: {app: demo}\n    replicas: 2\n    ports: [8080, 9090]\n'
        '  tasks:\n' + play_tasks)
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(workdir / 'roles'), ANSIBLE_NOCOLOR='1')
    return subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', str(playbook)], capture_output=True, text=True,
                          env=env, cwd=workdir, timeout=120, check=False)


def test_objects_and_text_are_those_of_the_builtin_template_lookup(workdir: Path) -> None:
    result = run(workdir, '    - ansible.builtin.import_role:\n        name: demo\n')
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(('template', 'message'), [
    ('missing.yaml.j2', 'the template missing.yaml.j2 was not found in the templates directories'),
    ('list.yaml.j2', 'the template list.yaml.j2 renders to something other than objects'),
    ('broken.yaml.j2', 'the template broken.yaml.j2 does not render to YAML'),
    ('separator.yaml.j2', 'the templates separator.yaml.j2 render the text that separates them'),
])
def test_a_template_that_gives_no_objects_fails_with_its_name(workdir: Path, template: str, message: str) -> None:
    result = run(workdir, '    - ansible.builtin.include_role:\n        name: demo\n        tasks_from: one\n'
                          f'      vars:\n        template: {template}\n')
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize('role', ['namespace', 'no-such-role', '../namespace'])
def test_a_template_missing_from_the_role_named_fails_with_its_names(workdir: Path, role: str) -> None:
    result = run(workdir, '    - ansible.builtin.debug:\n'
                          f"        msg: \"{{{{ query('backstage.k8s.manifests', 'objects.yaml.j2', role='{role}') }}}}\"\n")
    assert result.returncode != 0
    assert (f'the template objects.yaml.j2 was not found in the templates directory of the role {role} of backstage.k8s'
            in result.stdout + result.stderr)
