# -*- coding: utf-8 -*-
# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Decide whether an image must be imported into a containerd, and how to name it there.

An image is "already there" when the containerd has the wanted name pointing at the same
content:

- for an OCI image layout archive (``index.json``), the manifest (or index) digest the archive
  names, which is what ``ctr images import`` records as the image's target;
- for a docker-format archive (``manifest.json`` only) and for an image in docker or podman,
  the config digest, that is the image ID (``docker image inspect --format '{{.Id}}'``), which
  is what survives the conversion ``ctr`` makes of a docker archive.

Names are compared in their normalized form (``backstage:1.0`` is
``docker.io/library/backstage:1.0``), the form containerd and the kubelet use.

Private to the collection: used by the ``containerd_image`` module. Plain functions, no I/O
except reading archives; nothing exits the process.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

DEFAULT_DOMAIN = 'docker.io'
OFFICIAL_REPO_PREFIX = 'library/'
ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name'
ANNOTATION_IMAGE_NAME = 'io.containerd.image.name'
INDEX_MEDIA_TYPES = (
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
)

_TAG = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
_DIGEST = re.compile(r'^sha256:[0-9a-f]{64}$')
_PATH_COMPONENT = re.compile(r'^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$')


class ImageError(Exception):
    """Input that cannot be imported as asked; the message is meant for a person."""


class Reference(NamedTuple):
    """A normalized image reference: ``domain/path:tag`` (``digest`` when pinned)."""

    domain: str
    path: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def repository(self) -> str:
        return '{0}/{1}'.format(self.domain, self.path)

    @property
    def name(self) -> str:
        ref = self.repository
        if self.tag:
            ref += ':' + self.tag
        if self.digest:
            ref += '@' + self.digest
        return ref


def parse_reference(ref: str) -> Reference:
    """Parse and normalize an image reference the way docker and containerd do.

    ``backstage:1.0`` -> ``docker.io/library/backstage:1.0``; ``localhost/x:1`` and
    ``localhost:32000/x:1`` keep their domain (a first component with a dot, a colon, or
    ``localhost`` is a registry host).
    """
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise ImageError('not an image reference: {0!r}'.format(ref))
    rest, digest = ref, None
    if '@' in rest:
        rest, digest = rest.split('@', 1)
        if not _DIGEST.match(digest):
            raise ImageError('{0!r} has a digest that is not sha256:<64 hex digits>'.format(ref))
    tag = None
    last_slash = rest.rfind('/')
    colon = rest.rfind(':')
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise ImageError('{0!r} has an invalid tag {1!r}'.format(ref, tag))
    parts = rest.split('/')
    if len(parts) > 1 and ('.' in parts[0] or ':' in parts[0] or parts[0] == 'localhost'):
        domain, path = parts[0], '/'.join(parts[1:])
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == 'index.docker.io':
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and '/' not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if not path or not all(_PATH_COMPONENT.match(part) for part in path.split('/')):
        raise ImageError('{0!r} is not a valid image reference (repository names are lower case: '
                         'letters, digits and . _ - separated by /)'.format(ref))
    return Reference(domain, path, tag, digest)


def require_pinned_tag(ref: str) -> Reference:
    """The parsed reference, if it has a real tag: no tag and ``latest`` are refused."""
    parsed = parse_reference(ref)
    if parsed.digest:
        raise ImageError('{0!r}: give a name with a tag (name:tag), not a digest; the digest is '
                         'read from the image itself'.format(ref))
    if not parsed.tag or parsed.tag == 'latest':
        raise ImageError(
            '{0!r} has {1}: give it a real tag such as {2}:1.0. The kubelet pulls ":latest" images on '
            'every start (imagePullPolicy Always) and microk8s\'s containerd does not keep them for '
            'IfNotPresent, so an imported ":latest" image would not be used.'.format(
                ref, 'no tag' if not parsed.tag else 'the tag "latest"', parsed.repository))
    return parsed


class ArchiveEntry(NamedTuple):
    """One image an archive holds."""

    kind: str            # 'manifest': digest is the manifest/index digest; 'config': the config digest
    digest: str
    media_type: str
    names: Tuple[str, ...]  # names as written in the archive (tags or references), unnormalized


class Archive(NamedTuple):
    path: str
    layout: str          # 'oci' (index.json) or 'docker' (manifest.json only)
    size: int
    entries: Tuple[ArchiveEntry, ...]


def _read_member(tar: tarfile.TarFile, names: List[str], path: str, member: str) -> Optional[bytes]:
    for candidate in (member, './' + member):
        if candidate in names:
            handle = tar.extractfile(candidate)
            if handle is None:
                raise ImageError('{0}: {1} is not a regular file'.format(path, member))
            return handle.read()
    return None


def read_archive(path: str) -> Archive:
    """What images an OCI layout or docker-format archive (a tar file) holds."""
    import os

    try:
        size = os.path.getsize(path)
        with tarfile.open(path, 'r:*') as tar:
            names = tar.getnames()
            index = _read_member(tar, names, path, 'index.json')
            manifest = None if index is not None else _read_member(tar, names, path, 'manifest.json')
    except (OSError, tarfile.TarError) as exc:
        raise ImageError('cannot read the image archive {0}: {1}'.format(path, exc))
    try:
        if index is not None:
            return Archive(path, 'oci', size, _oci_entries(json.loads(index)))
        if manifest is not None:
            return Archive(path, 'docker', size, _docker_entries(json.loads(manifest)))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ImageError('{0} is not a valid image archive: {1}'.format(path, exc))
    raise ImageError('{0} is neither an OCI image layout (no index.json) nor a docker archive '
                     '(no manifest.json)'.format(path))


def _oci_entries(index: Dict[str, Any]) -> Tuple[ArchiveEntry, ...]:
    entries = []
    for desc in index['manifests']:
        annotations = desc.get('annotations') or {}
        names = tuple(n for n in (annotations.get(ANNOTATION_IMAGE_NAME), annotations.get(ANNOTATION_REF_NAME)) if n)
        if not _DIGEST.match(desc['digest']):
            raise ValueError('unsupported digest {0!r}'.format(desc['digest']))
        entries.append(ArchiveEntry('manifest', desc['digest'], desc.get('mediaType', ''), names))
    if not entries:
        raise ValueError('index.json lists no image')
    return tuple(entries)


def _docker_entries(manifest: List[Dict[str, Any]]) -> Tuple[ArchiveEntry, ...]:
    entries = []
    for image in manifest:
        config = image['Config']  # "<hex>.json" (docker < 25) or "blobs/sha256/<hex>"
        hexdigest = config.rsplit('/', 1)[-1]
        if hexdigest.endswith('.json'):
            hexdigest = hexdigest[:-len('.json')]
        digest = 'sha256:' + hexdigest
        if not _DIGEST.match(digest):
            raise ValueError('cannot tell the config digest from {0!r}'.format(config))
        entries.append(ArchiveEntry('config', digest, 'application/vnd.docker.container.image.v1+json',
                                    tuple(image.get('RepoTags') or ())))
    if not entries:
        raise ValueError('manifest.json lists no image')
    return tuple(entries)


def entry_matches(entry: ArchiveEntry, wanted: Reference) -> Tuple[bool, bool]:
    """(this entry is the wanted image, importing it with --base-name names it ``wanted`` already)."""
    for written in entry.names:
        if _TAG.match(written):  # a bare tag, as umoci and buildah write it
            if written == wanted.tag:
                return True, True
            continue
        try:
            if parse_reference(written).name == wanted.name:
                return True, True
        except ImageError:
            continue
    return False, False


def select_entry(archive: Archive, wanted: Reference) -> Tuple[ArchiveEntry, bool]:
    """The archive's image to import as ``wanted``, and whether ctr will name it so by itself.

    An archive with one image gives that image whatever its names; with several, the one whose
    name or tag is the wanted one.
    """
    matching = [(entry, named) for entry in archive.entries for named in [entry_matches(entry, wanted)[1]] if named]
    if matching:
        return matching[0]
    if len(archive.entries) == 1:
        return archive.entries[0], False
    raise ImageError('{0} holds {1} images ({2}) and none is named {3}: name one of them'.format(
        archive.path, len(archive.entries),
        ', '.join(' '.join(e.names) or e.digest for e in archive.entries), wanted.name))


class ContainerdImage(NamedTuple):
    name: str
    media_type: str
    digest: str


def parse_images_ls(output: str) -> Dict[str, ContainerdImage]:
    """Images listed by ``ctr images ls`` (REF TYPE DIGEST SIZE PLATFORMS LABELS), by name."""
    images = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] == 'REF':
            continue
        if not _DIGEST.match(fields[2]):
            raise ImageError('unexpected line in the output of ctr images ls: {0!r}'.format(line))
        images[fields[0]] = ContainerdImage(fields[0], fields[1], fields[2])
    return images


def parse_images_check(output: str) -> Dict[str, bool]:
    """Whether each image listed by ``ctr images check`` has all its content (``complete``)."""
    result = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == 'REF':
            continue
        result[fields[0]] = fields[3] == 'complete'
    return result


class ImageState(NamedTuple):
    """An image as ``ctr images check`` lists it: its target and whether all its content is there."""

    name: str
    media_type: str
    digest: str
    complete: bool


def parse_images_check_states(output: str) -> Dict[str, ImageState]:
    """Images listed by ``ctr images check`` (REF TYPE DIGEST STATUS SIZE UNPACKED), by name.

    ``ctr images check name==NAME`` reads only that image's content records, where ``ctr images
    ls`` reads every image's manifests to print their sizes (0.2 s with a hundred images).
    """
    states = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == 'REF':
            continue
        if not _DIGEST.match(fields[2]):
            raise ImageError('unexpected line in the output of ctr images check: {0!r}'.format(line))
        states[fields[0]] = ImageState(fields[0], fields[1], fields[2], fields[3] == 'complete')
    return states


def name_filters(names: List[str]) -> List[str]:
    """``ctr images`` filter arguments that select exactly these names (several filters are or-ed)."""
    for name in names:
        if not all(c.isalnum() or c in '._-/:@' for c in name):
            raise ImageError('{0!r} cannot be used in a ctr filter'.format(name))
    return ['name==' + name for name in names]


def platform_matches(descriptor: Dict[str, Any], platform: str) -> bool:
    """Whether an index entry is for ``platform`` (``os/architecture`` or ``os/architecture/variant``).

    A variant is compared only when both sides name one (arm64 images often leave ``v8`` out).
    """
    wanted_os, wanted_arch, wanted_variant = (platform.split('/', 2) + ['', ''])[:3]
    found = descriptor.get('platform') or {}
    return (found.get('os') == wanted_os and found.get('architecture') == wanted_arch
            and (not wanted_variant or not found.get('variant') or found.get('variant') == wanted_variant))


def parse_plugins_platform(text: str) -> str:
    """The platform a containerd runs images for, from ``ctr plugins ls``.

    It is the PLATFORMS column of the CRI plugin (``io.containerd.grpc.v1 cri``), which the kubelet
    uses, or else of the task runtime (``io.containerd.runtime.v2 task``): the node's own platform
    (``linux/arm64/v8`` on Apple Silicon's microk8s VM).
    """
    rows = {}  # type: Dict[Tuple[str, str], str]
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2] != '-':
            rows[(fields[0], fields[1])] = fields[2].split(',')[0]
    for key in (('io.containerd.grpc.v1', 'cri'), ('io.containerd.runtime.v2', 'task')):
        if key in rows:
            return rows[key]
    raise ImageError('"ctr plugins ls" shows neither the CRI plugin nor the task runtime with a platform; '
                     'give the platform (for example linux/arm64)')


def config_digest(target_digest: str, media_type: str, fetch: Callable[[str], bytes],
                  platform: Callable[[], str]) -> str:
    """The config digest (image ID) of the image whose target is ``target_digest``.

    ``fetch(digest)`` returns a blob's bytes (``ctr content get``). An index is followed to the
    manifest of ``platform()`` (``linux/amd64``), asked for only then.
    """
    blob = fetch(target_digest)
    if hashlib.sha256(blob).hexdigest() != target_digest.split(':', 1)[1]:
        raise ImageError('the content of {0} does not match its digest'.format(target_digest))
    document = json.loads(blob)
    if media_type in INDEX_MEDIA_TYPES or document.get('manifests') is not None:
        for descriptor in document.get('manifests') or ():
            if platform_matches(descriptor, platform()):
                try:
                    return config_digest(descriptor['digest'], descriptor.get('mediaType', ''), fetch, platform)
                except ImageError as exc:
                    raise ImageError('the image index {0} has a manifest for {1}, which cannot be read ({2}); a '
                                     'containerd keeps the content of its own platform only: is {1} the '
                                     'node\'s?'.format(target_digest, platform(), exc))
        raise ImageError('the image index {0} has no manifest for {1}'.format(target_digest, platform()))
    return document['config']['digest']


def normalize_image_id(image_id: str) -> str:
    """``sha256:<hex>`` from what ``docker``/``podman image inspect`` print as the ID."""
    image_id = image_id.strip()
    if re.match(r'^[0-9a-f]{64}$', image_id):
        image_id = 'sha256:' + image_id
    if not _DIGEST.match(image_id):
        raise ImageError('not an image ID: {0!r}'.format(image_id))
    return image_id


def human_size(size: int) -> str:
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return '{0:.0f} {1}'.format(value, unit) if unit == 'B' else '{0:.1f} {1}'.format(value, unit)
        value /= 1024
    return '{0} B'.format(size)  # pragma: no cover


def import_command(ctr_command: List[str], wanted: Reference, source: str, with_digests: bool) -> List[str]:
    """``ctr images import`` of ``source`` (a path, or ``-`` for standard input) under wanted's repository.

    ``--base-name`` keeps only the archive's names in that repository (a bare tag becomes
    ``repository:tag``); ``--digests`` also names the image ``repository@digest``, which is what
    is tagged as the wanted name when the archive calls it something else.
    """
    command = list(ctr_command) + ['images', 'import', '--base-name', wanted.repository]
    if with_digests:
        command.append('--digests')
    return command + [source]


def substitute(command: List[str], **values: str) -> List[str]:
    """The command with ``{src}``/``{dest}`` placeholders in its arguments filled in."""
    return [arg.format(**values) if '{' in arg else arg for arg in command]
