# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Ask a containerd (through ctr), docker/podman or a registry what they hold, and decide whether
an image must be imported: the part of ``containerd_image`` that ``containerd_image_info`` shares.

Private to the collection. Commands run through ``AnsibleModule.run_command``; failures raise
``ImageError`` with a message meant for a person.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.backstage.k8s.plugins.module_utils._containerd_image import (
    ImageError,
    ImageState,
    Reference,
    config_digest,
    human_size,
    name_filters,
    normalize_image_id,
    parse_images_check_states,
    parse_plugins_platform,
    platform_matches,
    parse_images_ls,
    read_archive,
    require_pinned_tag,
    select_entry,
)

_MANIFEST_ACCEPT = ', '.join((
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json',
))


class Containerd:
    """Runs ctr against one containerd."""

    def __init__(self, module: AnsibleModule, ctr_command: List[str], platform: str = '') -> None:
        self.module = module
        self.ctr = list(ctr_command)
        self._platform = platform or None  # type: Optional[str]

    def platform(self) -> str:
        """The platform of the images compared: the one given, else the containerd's own.

        Read (``ctr plugins ls``) only when an image index has to be followed, so a re-run with
        nothing to import costs no more calls.
        """
        if self._platform is None:
            self._platform = parse_plugins_platform(self.run('plugins', 'ls'))
        return self._platform

    def platform_read(self) -> Optional[str]:
        """The platform, when it was given or read; None when no index needed it."""
        return self._platform

    def _run(self, command: List[str], **kwargs: Any) -> Tuple[int, Any, Any]:
        try:
            return self.module.run_command(command, handle_exceptions=False, **kwargs)
        except OSError as exc:
            raise ImageError('cannot run {0}: {1} (is the ctr command right?)'.format(' '.join(command), to_native(exc)))

    def run(self, *args: str) -> str:
        command = self.ctr + list(args)
        rc, out, err = self._run(command)
        if rc != 0:
            raise ImageError('{0} failed (exit {1}): {2}'.format(' '.join(command), rc, (err or out).strip()))
        return out

    def images(self) -> Dict[str, Any]:
        """Every image, by name (``ctr images ls``: reads every image's manifests, slow with many)."""
        return parse_images_ls(self.run('images', 'ls'))

    def states(self, names: List[str]) -> Dict[str, ImageState]:
        """The images among ``names`` that the containerd has, with whether their content is complete.

        One ``ctr images check`` with a filter per name: it reads only those images' records.
        """
        if not names:
            return {}
        return parse_images_check_states(self.run('images', 'check', *name_filters(sorted(set(names)))))

    def blob(self, digest: str) -> bytes:
        command = self.ctr + ['content', 'get', digest]
        rc, out, err = self._run(command, encoding=None)
        if rc != 0:
            raise ImageError('{0} failed (exit {1}): {2}'.format(' '.join(command), rc, to_text(err).strip()))
        return out

    def identity(self, image: Any, kind: str) -> str:
        if kind == 'manifest':
            return image.digest
        return config_digest(image.digest, image.media_type, self.blob, self.platform)


def cli_image(module: AnsibleModule, cli: str, name: str) -> Tuple[str, int]:
    """The image ID and size docker or podman report for ``name``."""
    executable = module.get_bin_path(cli, required=True)
    rc, out, err = module.run_command([executable, 'image', 'inspect', '--format', '{{.Id}} {{.Size}}', name])
    if rc != 0:
        raise ImageError('{0} has no image {1}: build or pull it first ({2})'.format(cli, name, (err or out).strip()))
    image_id, size = out.split()
    return normalize_image_id(image_id), int(size)


def registry_target(wanted: Reference, registry: str) -> Tuple[str, str]:
    """(repository path in the registry, full name there) for ``wanted`` pushed to ``registry``."""
    path = wanted.path
    if wanted.domain == 'docker.io' and path.startswith('library/'):
        path = path[len('library/'):]
    return path, '{0}/{1}:{2}'.format(registry, path, wanted.tag)


def registry_config_digest(registry: str, path: str, tag: str, platform: Callable[[], str]) -> Optional[str]:
    """The config digest the registry has for path:tag, or None when it has none."""
    # Imported here: ansible's urls (ssl, http.client) costs about 0.1 s, and only this method needs it.
    from ansible.module_utils.urls import open_url

    def get(reference: str) -> Optional[Dict[str, Any]]:
        url = 'http://{0}/v2/{1}/manifests/{2}'.format(registry, path, reference)
        try:
            response = open_url(url, headers={'Accept': _MANIFEST_ACCEPT}, timeout=30)
        except Exception as exc:  # urllib raises HTTPError for 404, URLError when unreachable
            if getattr(exc, 'code', None) == 404:
                return None
            raise ImageError('cannot read {0}: {1}'.format(url, to_native(exc)))
        return json.loads(response.read())

    document = get(tag)
    if document is None:
        return None
    if document.get('manifests') is not None:
        for descriptor in document['manifests']:
            if platform_matches(descriptor, platform()):
                document = get(descriptor['digest'])
                break
        else:
            return None
    return (document or {}).get('config', {}).get('digest')


def describe(module: AnsibleModule, name: str, archive: Optional[str], source: Optional[str], method: str,
             result: Dict[str, Any]) -> Tuple[Reference, bool]:
    """Fill ``result`` with what the wanted image is: name, digest, digest_kind, size, size_human.

    Returns the parsed name and whether ctr will name the image so by itself (an archive whose
    image has the wanted name or tag). Reads only an archive's index.json or manifest.json, never
    its layers, so it costs the same for a 1 GB archive as for a 1 MB one.
    """
    wanted = require_pinned_tag(name)
    result['name'] = wanted.name
    named = True
    if archive is not None:
        if method == 'registry':
            raise ImageError('method registry pushes images from docker or podman (source); load {0} with '
                             '"docker load -i" first, or use method ctr'.format(archive))
        found = read_archive(archive)
        entry, named = select_entry(found, wanted)
        result.update(digest=entry.digest, digest_kind=entry.kind, size=found.size)
    elif source is not None:
        image_id, size = cli_image(module, source, name)
        result.update(digest=image_id, digest_kind='config', size=size)
    else:
        raise ImageError('{0}: give exactly one of archive and source'.format(name))
    result['size_human'] = human_size(result['size'])
    return wanted, named


def compare(containerd: Containerd, wanted: Reference, method: str, registry: str,
            result: Dict[str, Any], states: Optional[Mapping[str, ImageState]] = None) -> None:
    """Fill ``result`` with previous_digest and up_to_date: does the target have exactly this image?

    ``states`` is what ``Containerd.states`` returned for a list of names including this one
    (several images are compared with one ctr call); without it, ctr is asked for this name.
    Up to date means: the name points at the same digest (of the same kind) and all its content is there.
    An image index (in the containerd or the registry) is followed to the manifest of
    ``containerd.platform()``.
    """
    if method == 'registry':
        path, target = registry_target(wanted, registry)
        result['name'] = target
        current_id = registry_config_digest(registry, path, wanted.tag or '', containerd.platform)
        result['previous_digest'] = current_id
        result['up_to_date'] = current_id == result['digest']
        return
    if states is None:
        states = containerd.states([wanted.name])
    current = states.get(wanted.name)
    previous = None if current is None else containerd.identity(current, result['digest_kind'])
    result['previous_digest'] = previous
    result['up_to_date'] = current is not None and current.complete and previous == result['digest']
