# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""backstage.k8s.containerd_image_info as a module: what it refuses before it asks any containerd.

Its answers against a real containerd are tested through the image_import role (tests/image_import).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.backstage.k8s.plugins.modules import containerd_image_info

MANIFEST_DIGEST = 'sha256:22441c70e5792fffb2d15ecd2fa4ed1644afb280bb421d39eaec3209f9df77c7'
# A ctr that cannot run: any call to it fails the test with "No such file".
NO_CTR = ['/nonexistent/ctr']


def run_module(capsys: pytest.CaptureFixture, **args: Any) -> Tuple[int, Dict[str, Any]]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        containerd_image_info.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


def oci_archive(path: Path) -> Path:
    index = json.dumps({'schemaVersion': 2, 'manifests': [{
        'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': MANIFEST_DIGEST, 'size': 349,
        'annotations': {'org.opencontainers.image.ref.name': '1.0'}}]}).encode()
    with tarfile.open(path, 'w') as tar:
        info = tarfile.TarInfo('index.json')
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index))
    return path


def test_a_name_without_a_real_tag_fails_naming_the_image_before_ctr_runs(
        capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    archive = str(oci_archive(tmp_path / 'a.tar'))
    code, result = run_module(capsys, ctr_command=NO_CTR, images=[
        {'name': 'localhost/demo/web:1.0', 'archive': archive},
        {'name': 'localhost/demo/web:latest', 'archive': archive},
    ])
    assert code == 1
    assert result['msg'].startswith('localhost/demo/web:latest: ') and 'give it a real tag' in result['msg']
    assert result['images'][0]['digest'] == MANIFEST_DIGEST


@pytest.mark.parametrize('image, message', [
    ({'name': 'localhost/demo/web:1.0'}, 'one of the following is required: archive, source'),
    ({'name': 'localhost/demo/web:1.0', 'archive': '/x.tar', 'source': 'podman'}, 'mutually exclusive'),
    ({'name': 'localhost/demo/web:1.0', 'source': 'kaniko'}, 'value of source must be one of'),
], ids=['neither', 'both', 'unknown-source'])
def test_each_image_needs_exactly_one_archive_or_source(
        capsys: pytest.CaptureFixture, image: Dict[str, str], message: str) -> None:
    code, result = run_module(capsys, ctr_command=NO_CTR, images=[image])
    assert code == 1 and message in result['msg']


def test_an_archive_that_is_not_there_fails_with_its_path(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, result = run_module(capsys, ctr_command=NO_CTR, images=[
        {'name': 'localhost/demo/web:1.0', 'archive': str(tmp_path / 'missing.tar')}])
    assert code == 1 and 'cannot read the image archive {0}'.format(tmp_path / 'missing.tar') in result['msg']


def test_a_containerd_that_cannot_be_reached_fails_with_the_command(
        capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, result = run_module(capsys, ctr_command=NO_CTR, images=[
        {'name': 'localhost/demo/web:1.0', 'archive': str(oci_archive(tmp_path / 'a.tar'))}])
    assert code == 1 and '/nonexistent/ctr' in result['msg']
