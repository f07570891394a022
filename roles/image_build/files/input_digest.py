# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Print one digest per image of everything its build reads, as JSON.

Reads a JSON object from stdin: {"<image>": {"trees": [paths], "files": [paths], "exclude":
[names or relative paths], "text": "..."}}. A file contributes its name and content; a tree contributes each file's relative path, executable bit and content
(a symbolic link: its target); excluded names (at any depth) and relative paths are skipped with
everything under them. Times and owners are not inputs, so an untouched checkout keeps its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def tree_digest(root: str, exclude: list) -> str:
    names = {e for e in exclude if '/' not in e}
    paths = {e for e in exclude if '/' in e}
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        subdirs[:] = sorted(
            d for d in subdirs
            if d not in names and os.path.normpath(os.path.join(relative_dir, d)) not in paths)
        for name in sorted(files):
            relative = os.path.normpath(os.path.join(relative_dir, name))
            if name in names or relative in paths or name.endswith('.pyc'):
                continue
            path = os.path.join(directory, name)
            if os.path.islink(path):
                entry = 'l ' + os.readlink(path)
            else:
                with open(path, 'rb') as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
                entry = ('x ' if os.access(path, os.X_OK) else 'f ') + content
            digest.update('{0}\0{1}\n'.format(relative, entry).encode())
    return digest.hexdigest()


def main() -> None:
    spec = json.load(sys.stdin)
    result = {}
    for image, inputs in sorted(spec.items()):
        digest = hashlib.sha256(inputs.get('text', '').encode())
        for root in inputs.get('trees', []):
            if not os.path.isdir(root):
                sys.exit('input_digest: not a directory: {0}'.format(root))
            digest.update('{0}\0{1}\n'.format(os.path.basename(os.path.normpath(root)),
                                              tree_digest(root, inputs.get('exclude', []))).encode())
        for path in inputs.get('files', []):
            with open(path, 'rb') as handle:
                digest.update('{0}\0{1}\n'.format(os.path.basename(path),
                                                  hashlib.sha256(handle.read()).hexdigest()).encode())
        result[image] = digest.hexdigest()
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main()
