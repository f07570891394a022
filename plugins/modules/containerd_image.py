#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_image
short_description: Import an image into a containerd (microk8s, or any) unless it is already there
version_added: 0.1.0
description:
  - "Makes a containerd hold an image under a name, so that pods using that name with
    C(imagePullPolicy: IfNotPresent) or C(Never) start without a registry."
  - The image comes from an OCI image layout or docker-format archive (O(archive)), or from the
    local docker or podman image store (O(source)), streamed with C(docker save) straight into
    C(ctr images import -), with no temporary archive.
  - It does nothing when the containerd already has O(name) pointing at the same content. For
    an OCI archive that is the manifest digest in the archive's C(index.json); for a docker
    archive or a docker/podman image, the image ID (config digest), compared with the config
    digest of the manifest containerd has for O(name).
  - The containerd is reached by running O(ctr_command) (C(microk8s ctr) by default; C(ctr
    --address SOCKET -n k8s.io) for another containerd), so the same module imports into any
    containerd the controller can run C(ctr) against.
  - With O(copy_command) the archive is first copied to where O(ctr_command) runs (for microk8s
    on macOS, into the multipass VM with C(multipass transfer)), imported from there and removed
    afterwards with O(remove_command).
  - With O(method=registry) the image is instead tagged and pushed to a registry (the microk8s
    registry addon at C(localhost:32000)), unless the registry already has it with the same image ID.
  - Names are normalized as containerd and the kubelet normalize them (C(backstage:1.0) is
    C(docker.io/library/backstage:1.0)). Tags C(latest) and names without a tag are refused.
author:
  - backstage.k8s maintainers (@backstage-k8s)
extends_documentation_fragment:
  - backstage.k8s.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reads the archive or the image ID and lists the containerd's
        images, and reports whether it would import; it imports nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the digest O(name) points at before and after.
  idempotent:
    support: full
options:
  name:
    description:
      - The name the image gets in the containerd (or the registry), with a real tag, as pods
        will refer to it, for example C(localhost/backstage/backend:1.0) or C(backstage:1.0).
      - For O(source=docker) and O(source=podman), also the name of the image in docker or podman.
      - For an archive holding several images, the one whose name or tag matches is imported;
        an archive holding one image is imported under O(name) whatever it calls it.
    type: str
    required: true
  archive:
    description:
      - Path on the controller (the host the module runs on) of an OCI image layout or
        docker-format archive (a tar file, as written by C(docker save), C(podman save),
        C(umoci) or C(buildah)).
      - Exactly one of O(archive) and O(source) is required.
    type: path
  source:
    description:
      - Take the image from the local docker or podman image store.
      - Exactly one of O(archive) and O(source) is required.
    type: str
    choices: [docker, podman]
  ctr_command:
    description:
      - The command that runs containerd's C(ctr) against the target containerd, in the
        namespace the kubelet uses (C(k8s.io)), as a list of arguments.
      - C(microk8s ctr) already uses the C(k8s.io) namespace.
    type: list
    elements: str
    default: [microk8s, ctr]
  copy_command:
    description:
      - When set, the archive is copied with this command to where O(ctr_command) runs and
        imported from there. C({src}) and C({dest}) in its arguments are replaced by the local
        archive and the path it is copied to (in O(copy_dir)).
      - Images from O(source) are first saved to a temporary archive on the controller, which is
        removed afterwards.
      - For microk8s on macOS, V([multipass, transfer, "{src}", "microk8s-vm:{dest}"]).
    type: list
    elements: str
  remove_command:
    description:
      - With O(copy_command), the command that removes the copy afterwards (C({dest}) is replaced
        by its path). It runs even when the import fails.
      - For microk8s on macOS, V([multipass, exec, microk8s-vm, --, rm, -f, "{dest}"]).
    type: list
    elements: str
  copy_dir:
    description:
      - With O(copy_command), the directory the archive is copied to.
    type: str
    default: /tmp
  method:
    description:
      - V(ctr) imports into the containerd with O(ctr_command).
      - V(registry) tags the image as O(registry)/C(path:tag) and pushes it with docker or
        podman (O(source) only; load an archive with C(docker load) first).
    type: str
    choices: [ctr, registry]
    default: ctr
  registry:
    description:
      - With O(method=registry), the registry to push to (plain HTTP, as the microk8s registry addon serves).
    type: str
    default: localhost:32000
  platform:
    description:
      - The platform (C(os/architecture), optionally C(/variant)) whose manifest is compared when the
        containerd or the registry holds a multi-platform image index, for example V(linux/arm64).
      - Empty for the platform of the containerd of O(ctr_command), which runs the cluster node's
        images (C(ctr plugins ls), the CRI plugin's; V(linux/arm64/v8) in microk8s's VM on Apple
        Silicon). It is read only when an index is compared.
    type: str
    default: ""
  force:
    description:
      - Import even when the containerd already has the image.
    type: bool
    default: false
notes:
  - Needs C(ctr) (or C(microk8s)) on the host the module runs on, and docker or podman for O(source).
  - A new import of an image already running in pods does not restart them; pods started
    afterwards use the new content.
seealso:
  - name: containerd's ctr
    description: The containerd client the module runs.
    link: https://github.com/containerd/containerd/blob/main/docs/getting-started.md
"""

EXAMPLES = r"""
- name: Import an OCI archive into microk8s's containerd
  backstage.k8s.containerd_image:
    name: localhost/backstage/backend:1.0
    archive: "{{ playbook_dir }}/images/backend.tar"

- name: Stream an image built with docker into microk8s, with no temporary archive
  backstage.k8s.containerd_image:
    name: backstage:1.0
    source: docker

- name: Import into another containerd, for example a test cluster's
  backstage.k8s.containerd_image:
    name: localhost/backstage/backend:1.0
    archive: /srv/images/backend.tar
    ctr_command: [ctr, --address, /run/containerd/containerd.sock, -n, k8s.io]

- name: Import into microk8s on macOS (inside its multipass VM)
  backstage.k8s.containerd_image:
    name: backstage:1.0
    source: docker
    ctr_command: [multipass, exec, microk8s-vm, --, sudo, microk8s, ctr]
    copy_command: [multipass, transfer, "{src}", "microk8s-vm:{dest}"]
    remove_command: [multipass, exec, microk8s-vm, --, rm, -f, "{dest}"]

- name: Push to the microk8s registry addon instead
  backstage.k8s.containerd_image:
    name: backstage:1.0
    source: docker
    method: registry
"""

RETURN = r"""
name:
  description: The normalized name the image has in the containerd (or the registry).
  returned: always
  type: str
  sample: docker.io/library/backstage:1.0
digest:
  description: The digest that identifies the image (see RV(digest_kind)).
  returned: always
  type: str
  sample: sha256:22441c70e5792fffb2d15ecd2fa4ed1644afb280bb421d39eaec3209f9df77c7
digest_kind:
  description:
    - V(manifest) when RV(digest) is the manifest (or index) digest of an OCI archive, V(config)
      when it is the image ID (config digest).
  returned: always
  type: str
  sample: manifest
previous_digest:
  description: The digest of the same kind O(name) had before, or V(null) when it did not exist.
  returned: always
  type: str
  sample: null
size:
  description: Size in bytes of the archive, or of the image as docker or podman report it.
  returned: always
  type: int
  sample: 1095680
up_to_date:
  description:
    - Whether the containerd (or the registry) already had O(name) with this content before the
      module ran. V(false) means it imported (or, in check mode, would import).
  returned: always
  type: bool
  sample: true
size_human:
  description: RV(size) for people.
  returned: always
  type: str
  sample: 1.0 MiB
platform:
  description: The platform an image index was followed to, given or read from the containerd.
  returned: when an image index was compared, or O(platform) was given
  type: str
  sample: linux/arm64/v8
imported_names:
  description: Every name the containerd gave the image during this import (an archive's own names included).
  returned: when the image was imported
  type: list
  elements: str
  sample: [localhost/backstage/backend:1.0]
"""

import os
import re
import shlex
import tempfile
import traceback
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.backstage.k8s.plugins.module_utils._containerd_client import (
    Containerd,
    compare,
    describe,
    registry_target,
)
from ansible_collections.backstage.k8s.plugins.module_utils._containerd_image import (
    ImageError,
    Reference,
    import_command,
    substitute,
)


def run_pipeline(module: AnsibleModule, producer: List[str], consumer: List[str]) -> str:
    """Run ``producer | consumer`` with pipefail; the output, or ImageError naming the pipeline."""
    pipeline = 'set -o pipefail; {0} | {1}'.format(shlex.join(producer), shlex.join(consumer))
    rc, out, err = module.run_command(pipeline, use_unsafe_shell=True, executable=module.get_bin_path('bash', required=True))
    if rc != 0:
        raise ImageError('{0} failed (exit {1}): {2}'.format(pipeline, rc, (err or out).strip()))
    return out + err


def registry_push(module: AnsibleModule, wanted: Reference) -> None:
    """Tag the image from docker or podman with its name in the registry and push it."""
    cli = module.params['source']
    target = registry_target(wanted, module.params['registry'])[1]
    executable = module.get_bin_path(cli, required=True)
    push = [executable, 'push'] + (['--tls-verify=false'] if cli == 'podman' else []) + [target]
    for command in ([executable, 'tag', module.params['name'], target], push):
        rc, out, err = module.run_command(command)
        if rc != 0:
            raise ImageError('{0} failed (exit {1}): {2}'.format(' '.join(command), rc, (err or out).strip()))


def import_into_containerd(module: AnsibleModule, containerd: Containerd, wanted: Reference, source: str,
                           named: bool) -> List[str]:
    """Import, streaming or through a copy; the names ctr reported."""
    params = module.params
    archive = params['archive']
    local_tmp = None
    try:
        if params['copy_command']:
            if archive is None:
                handle, local_tmp = tempfile.mkstemp(prefix='backstage-k8s-image-', suffix='.tar')
                os.close(handle)
                command = [module.get_bin_path(source, required=True), 'save', '-o', local_tmp, params['name']]
                rc, out, err = module.run_command(command)
                if rc != 0:
                    raise ImageError('{0} failed (exit {1}): {2}'.format(' '.join(command), rc, (err or out).strip()))
                archive = local_tmp
            dest = '{0}/backstage-k8s-image-{1}.tar'.format(params['copy_dir'].rstrip('/'), os.urandom(6).hex())
            copy = substitute(params['copy_command'], src=archive, dest=dest)
            rc, out, err = module.run_command(copy)
            try:
                if rc != 0:
                    raise ImageError('{0} failed (exit {1}): {2}'.format(' '.join(copy), rc, (err or out).strip()))
                output = containerd.run(*import_command([], wanted, dest, not named))
            finally:
                if params['remove_command']:
                    module.run_command(substitute(params['remove_command'], dest=dest))
        elif archive is not None:
            output = containerd.run(*import_command([], wanted, archive, not named))
        else:
            producer = [module.get_bin_path(source, required=True), 'save', params['name']]
            output = run_pipeline(module, producer, import_command(containerd.ctr, wanted, '-', True))
    finally:
        if local_tmp is not None and os.path.exists(local_tmp):
            os.remove(local_tmp)
    return re.findall(r'^unpacking (\S+) \(sha256:[0-9a-f]{64}\)', output, re.MULTILINE)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            archive=dict(type='path'),
            source=dict(type='str', choices=['docker', 'podman']),
            ctr_command=dict(type='list', elements='str', default=['microk8s', 'ctr']),
            copy_command=dict(type='list', elements='str'),
            remove_command=dict(type='list', elements='str'),
            copy_dir=dict(type='str', default='/tmp'),
            method=dict(type='str', choices=['ctr', 'registry'], default='ctr'),
            registry=dict(type='str', default='localhost:32000'),
            platform=dict(type='str', default=''),
            force=dict(type='bool', default=False),
        ),
        mutually_exclusive=[['archive', 'source']],
        required_one_of=[['archive', 'source']],
        required_by={'remove_command': 'copy_command'},
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False)  # type: Dict[str, Any]
    try:
        wanted, named = describe(module, params['name'], params['archive'], params['source'], params['method'], result)
        containerd = Containerd(module, params['ctr_command'], params['platform'])
        compare(containerd, wanted, params['method'], params['registry'], result)
        if not result['up_to_date'] or params['force']:
            result['changed'] = True
            if not module.check_mode and params['method'] == 'registry':
                registry_push(module, wanted)
            elif not module.check_mode:
                before = containerd.images()
                result['imported_names'] = import_into_containerd(module, containerd, wanted, params['source'], named)
                after = containerd.states([wanted.name])
                if wanted.name not in after or containerd.identity(after[wanted.name], result['digest_kind']) != result['digest']:
                    tag_from_imported(containerd, wanted, result, before, containerd.images())
        if containerd.platform_read():
            result['platform'] = containerd.platform_read()
        result['diff'] = dict(
            before='{0}: {1}\n'.format(result['name'], result.get('previous_digest') or '(absent)'),
            after='{0}: {1}\n'.format(result['name'], result['digest']),
        )
    except ImageError as exc:
        module.fail_json(msg=to_native(exc), **result)
    except (OSError, ValueError, KeyError) as exc:
        module.fail_json(msg='unexpected error: {0}'.format(to_native(exc)), exception=traceback.format_exc(), **result)
    module.exit_json(**result)


def tag_from_imported(containerd: Containerd, wanted: Reference, result: Dict[str, Any], before: Dict[str, Any],
                      after: Dict[str, Any]) -> None:
    """Name the image just imported ``wanted`` when the archive called it something else."""
    candidates = [name for name, image in after.items()
                  if before.get(name) != image or name.startswith(wanted.repository + '@')]
    for name in sorted(candidates, key=lambda n: ('@' not in n, n)):
        if containerd.identity(after[name], result['digest_kind']) == result['digest']:
            containerd.run('images', 'tag', '--force', name, wanted.name)
            final = containerd.states([wanted.name]).get(wanted.name)
            if final is not None and containerd.identity(final, result['digest_kind']) == result['digest']:
                return
            break
    raise ImageError('imported the image, but the containerd does not list {0} with {1} afterwards (names it '
                     'has now: {2})'.format(wanted.name, result['digest'], ', '.join(sorted(after)) or 'none'))


if __name__ == '__main__':
    main()
