# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Deciding what an image is and whether a containerd has it, on real archives and ctr outputs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Dict

import pytest

from ansible_collections.backstage.k8s.plugins.module_utils._containerd_image import (
    ImageError,
    config_digest,
    import_command,
    name_filters,
    parse_images_check,
    parse_images_check_states,
    parse_images_ls,
    parse_plugins_platform,
    parse_reference,
    platform_matches,
    read_archive,
    require_pinned_tag,
    select_entry,
)

# Output of Debian's ctr 1.6.20 ("ctr -n k8s.io images ls" and "images check") after importing an
# umoci-built archive with --base-name localhost/demo/web, on containerd with its CRI plugin
# (the second line is the name CRI gives the image: its config digest).
CTR = Path(__file__).parent / 'fixtures' / 'ctr'
CTR_IMAGES_LS = (CTR / 'images-ls.txt').read_text()
CTR_IMAGES_CHECK = (CTR / 'images-check.txt').read_text()
MANIFEST_DIGEST = 'sha256:22441c70e5792fffb2d15ecd2fa4ed1644afb280bb421d39eaec3209f9df77c7'


@pytest.mark.parametrize('ref, expected', [
    ('backstage:1.0', 'docker.io/library/backstage:1.0'),
    ('team/app:2', 'docker.io/team/app:2'),
    ('localhost/backstage/backend:1.0', 'localhost/backstage/backend:1.0'),
    ('localhost:32000/backstage:1.0', 'localhost:32000/backstage:1.0'),
    ('registry.example.com/a/b/c:v1.2.3', 'registry.example.com/a/b/c:v1.2.3'),
    ('index.docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.27'),
], ids=['short', 'user-repo', 'localhost', 'localhost-port', 'deep-path', 'index-docker-io'])
def test_names_are_normalized_as_containerd_and_the_kubelet_do(ref: str, expected: str) -> None:
    assert parse_reference(ref).name == expected


@pytest.mark.parametrize('ref, message', [
    ('backstage', 'no tag'),
    ('backstage:latest', 'the tag "latest"'),
    ('localhost:32000/backstage', 'no tag'),
    ('Backstage:1.0', 'lower case'),
    ('backstage@sha256:' + 'a' * 64, 'not a digest'),
    ('', 'not an image reference'),
], ids=['no-tag', 'latest', 'registry-port-no-tag', 'upper-case', 'digest-only', 'empty'])
def test_names_without_a_real_tag_are_refused_with_the_reason(ref: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        require_pinned_tag(ref)


def _tar(path: Path, files: Dict[str, bytes]) -> Path:
    with tarfile.open(path, 'w') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _index(*entries: Dict[str, object]) -> bytes:
    return json.dumps({'schemaVersion': 2, 'manifests': list(entries)}).encode()


def test_oci_archive_gives_its_manifest_digest_and_bare_tag(tmp_path: Path) -> None:
    # The index.json umoci wrote for tests/cluster/oci-image (tar members start with "./").
    archive = _tar(tmp_path / 'a.tar', {'./oci-layout': b'{"imageLayoutVersion":"1.0.0"}', './index.json': _index({
        'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': MANIFEST_DIGEST, 'size': 349,
        'annotations': {'org.opencontainers.image.ref.name': '1.0'}})})
    info = read_archive(str(archive))
    assert info.layout == 'oci'
    entry, named = select_entry(info, parse_reference('localhost/demo/web:1.0'))
    assert (entry.kind, entry.digest, named) == ('manifest', MANIFEST_DIGEST, True)
    # Another tag: the one image is still the one, but ctr will not name it so by itself.
    entry, named = select_entry(info, parse_reference('localhost/demo/web:2.0'))
    assert (entry.digest, named) == (MANIFEST_DIGEST, False)


def test_archive_with_several_images_picks_the_named_one_or_refuses(tmp_path: Path) -> None:
    other = 'sha256:' + 'b' * 64
    archive = _tar(tmp_path / 'two.tar', {'index.json': _index(
        {'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': MANIFEST_DIGEST,
         'annotations': {'io.containerd.image.name': 'docker.io/library/backstage:1.0',
                         'org.opencontainers.image.ref.name': '1.0'}},
        {'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': other,
         'annotations': {'org.opencontainers.image.ref.name': '2.0'}},
    )})
    info = read_archive(str(archive))
    assert select_entry(info, parse_reference('backstage:1.0'))[0].digest == MANIFEST_DIGEST
    assert select_entry(info, parse_reference('backstage:2.0'))[0].digest == other
    with pytest.raises(ImageError, match='holds 2 images'):
        select_entry(info, parse_reference('backstage:3.0'))


def test_docker_archive_gives_the_config_digest_from_manifest_json(tmp_path: Path) -> None:
    config = 'a403a029d165c6114ff4ec339e653d40b417563993220edf50155d1b31236983'
    archive = _tar(tmp_path / 'd.tar', {'manifest.json': json.dumps([
        {'Config': config + '.json', 'RepoTags': ['backstage:1.0'], 'Layers': ['x/layer.tar']}]).encode()})
    entry, named = select_entry(read_archive(str(archive)), parse_reference('docker.io/library/backstage:1.0'))
    assert (entry.kind, entry.digest, named) == ('config', 'sha256:' + config, True)


@pytest.mark.parametrize('files, message', [
    ({'hello.txt': b'hi'}, 'neither an OCI image layout'),
    ({'index.json': b'{"manifests": []}'}, 'lists no image'),
    ({'index.json': b'not json'}, 'not a valid image archive'),
], ids=['no-index', 'empty-index', 'bad-json'])
def test_archives_that_are_not_images_are_refused(tmp_path: Path, files: Dict[str, bytes], message: str) -> None:
    with pytest.raises(ImageError, match=message):
        read_archive(str(_tar(tmp_path / 'bad.tar', files)))


def test_missing_archive_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match='cannot read the image archive .*/nope.tar'):
        read_archive(str(tmp_path / 'nope.tar'))


def test_ctr_listing_gives_each_name_and_its_digest() -> None:
    images = parse_images_ls(CTR_IMAGES_LS)
    assert images['localhost/demo/web:1.0'].digest == MANIFEST_DIGEST
    assert images['localhost/demo/web:1.0'].media_type == 'application/vnd.oci.image.manifest.v1+json'
    assert len(images) == 2
    assert parse_images_check(CTR_IMAGES_CHECK) == {'localhost/demo/web:1.0': True}
    assert parse_images_ls('REF TYPE DIGEST SIZE PLATFORMS LABELS\n') == {}


def test_config_digest_follows_an_index_to_the_platform_manifest() -> None:
    manifest = json.dumps({'schemaVersion': 2, 'config': {'digest': 'sha256:' + 'c' * 64}}).encode()
    manifest_digest = 'sha256:' + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({'schemaVersion': 2, 'manifests': [
        {'digest': 'sha256:' + 'd' * 64, 'platform': {'os': 'linux', 'architecture': 'arm64'}},
        {'digest': manifest_digest, 'platform': {'os': 'linux', 'architecture': 'amd64'}},
    ]}).encode()
    blobs = {manifest_digest: manifest, 'sha256:' + hashlib.sha256(index).hexdigest(): index}
    top = 'sha256:' + hashlib.sha256(index).hexdigest()
    assert config_digest(top, 'application/vnd.oci.image.index.v1+json', blobs.__getitem__, lambda: 'linux/amd64') == 'sha256:' + 'c' * 64
    with pytest.raises(ImageError, match='no manifest for linux/s390x'):
        config_digest(top, 'application/vnd.oci.image.index.v1+json', blobs.__getitem__, lambda: 'linux/s390x')


def test_content_that_does_not_match_its_digest_is_refused() -> None:
    with pytest.raises(ImageError, match='does not match its digest'):
        config_digest(MANIFEST_DIGEST, '', lambda digest: b'{}', lambda: 'linux/amd64')


def test_import_keeps_only_names_in_the_wanted_repository_and_adds_a_digest_name_when_renaming() -> None:
    wanted = parse_reference('localhost/demo/web:2.0')
    assert import_command(['microk8s', 'ctr'], wanted, 'a.tar', False) == [
        'microk8s', 'ctr', 'images', 'import', '--base-name', 'localhost/demo/web', 'a.tar']
    assert import_command(['ctr', '-n', 'k8s.io'], wanted, '-', True)[-2:] == ['--digests', '-']


def test_ctr_check_gives_each_name_its_digest_and_whether_all_its_content_is_there() -> None:
    states = parse_images_check_states(CTR_IMAGES_CHECK)
    assert list(states) == ['localhost/demo/web:1.0']
    state = states['localhost/demo/web:1.0']
    assert (state.digest, state.media_type, state.complete) == (
        MANIFEST_DIGEST, 'application/vnd.oci.image.manifest.v1+json', True)
    # An image whose layers were removed (or an import cut short) is not complete: it is imported again.
    incomplete = CTR_IMAGES_CHECK.replace('complete (2/2)', 'incomplete (1/2)')
    assert parse_images_check_states(incomplete)['localhost/demo/web:1.0'].complete is False
    assert parse_images_check_states(CTR_IMAGES_CHECK.splitlines()[0]) == {}


def test_ctr_check_output_without_a_digest_is_refused() -> None:
    with pytest.raises(ImageError, match='unexpected line'):
        parse_images_check_states('REF TYPE DIGEST STATUS\nlocalhost/demo/web:1.0 x notadigest complete\n')


def test_filters_select_exactly_the_wanted_names_and_refuse_what_a_filter_cannot_hold() -> None:
    assert name_filters(['docker.io/library/backstage:1.0', 'localhost:32000/a/b:v1.2_3']) == [
        'name==docker.io/library/backstage:1.0', 'name==localhost:32000/a/b:v1.2_3']
    with pytest.raises(ImageError, match='cannot be used in a ctr filter'):
        name_filters(['docker.io/library/x:1,name~=.*'])


# "ctr plugins ls" of Debian's containerd 1.6.20 (the test cluster's, amd64). On arm64 containerd
# prints its platforms with the variant it normalises arm64 to (platforms.Format: linux/arm64/v8);
# that output is this one with the platform replaced, labelled as such.
CTR_PLUGINS_LS = (CTR / 'plugins-ls.txt').read_text()


def test_the_containerd_platform_is_its_cri_plugins() -> None:
    assert parse_plugins_platform(CTR_PLUGINS_LS) == 'linux/amd64'
    assert parse_plugins_platform(CTR_PLUGINS_LS.replace('linux/amd64', 'linux/arm64/v8')) == 'linux/arm64/v8'


def test_without_cri_the_task_runtime_tells_the_platform() -> None:
    text = '\n'.join(line for line in CTR_PLUGINS_LS.splitlines() if ' cri ' not in line)
    assert parse_plugins_platform(text.replace('linux/amd64', 'linux/arm64/v8')) == 'linux/arm64/v8'


def test_a_containerd_that_shows_no_platform_is_an_error_that_says_to_give_one() -> None:
    with pytest.raises(ImageError, match='give the platform'):
        parse_plugins_platform('TYPE ID PLATFORMS STATUS\nio.containerd.content.v1 content - ok\n')


@pytest.mark.parametrize('platform, descriptor, matches', [
    ('linux/arm64/v8', {'os': 'linux', 'architecture': 'arm64'}, True),
    ('linux/arm64/v8', {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}, True),
    ('linux/arm64', {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}, True),
    ('linux/arm/v7', {'os': 'linux', 'architecture': 'arm', 'variant': 'v6'}, False),
    ('linux/arm64/v8', {'os': 'linux', 'architecture': 'amd64'}, False),
], ids=['variant-left-out-in-index', 'same-variant', 'no-variant-asked', 'other-variant', 'other-architecture'])
def test_index_entries_match_the_node_platform_with_or_without_variant(platform: str, descriptor: dict, matches: bool) -> None:
    assert platform_matches({'platform': descriptor}, platform) is matches


def test_an_index_on_an_arm64_node_is_followed_to_the_arm64_manifest_and_the_platform_is_asked_only_then() -> None:
    amd64_config, arm64_config = b'{"config": {"digest": "sha256:' + b'a' * 64 + b'"}}', b'{"config": {"digest": "sha256:' + b'b' * 64 + b'"}}'
    blobs = {'sha256:' + hashlib.sha256(b).hexdigest(): b for b in (amd64_config, arm64_config)}
    digests = list(blobs)
    index = json.dumps({'manifests': [
        {'digest': digests[0], 'platform': {'os': 'linux', 'architecture': 'amd64'}},
        {'digest': digests[1], 'platform': {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}},
    ]}).encode()
    top = 'sha256:' + hashlib.sha256(index).hexdigest()
    blobs[top] = index
    asked = []

    def node_platform() -> str:
        asked.append(1)
        return parse_plugins_platform(CTR_PLUGINS_LS.replace('linux/amd64', 'linux/arm64/v8'))

    assert config_digest(top, 'application/vnd.oci.image.index.v1+json', blobs.__getitem__, node_platform) == 'sha256:' + 'b' * 64
    assert asked
    asked.clear()
    config_digest(digests[0], 'application/vnd.oci.image.manifest.v1+json', blobs.__getitem__, node_platform)
    assert not asked
