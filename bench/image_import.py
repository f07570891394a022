"""The image_import role against a plain ``ctr images import``, with a ~1 GB image, and its no-op re-run.

Builds (once, cached under $BACKSTAGE_K8S_CACHE/bench, keyed by size) an OCI image archive: a tiny
root filesystem layer and two layers of incompressible random data, written by hand as an OCI
image layout (Python tarfile, no tools). Then, several rounds against the test cluster's
containerd (``tests/cluster/cluster env``), each starting from a containerd without the image
(every name pointing at it removed, garbage collection awaited, its layers checked gone):

  role  ansible-playbook with backstage.k8s.image_import (a fresh import)
  ctr   ctr -n k8s.io images import --base-name REPO ARCHIVE, the command the role runs
  noop  the same ansible-playbook again, with the image already there

The order of role and ctr alternates between rounds. Prints one JSON document, then a summary
on stderr. Removes the image from the containerd at the end.

    eval "$(tests/cluster/cluster env)"
    .venv/bin/python bench/image_import.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = REPO / 'tests' / 'image_import' / 'import.yml'
CACHE = Path(os.environ.get('BACKSTAGE_K8S_CACHE')
             or Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'backstage-k8s')
# Raise when the archive's layout changes, so that cached archives are rebuilt.
FORMAT = 1
REPOSITORY = 'docker.io/backstage-k8s/bench-import'
CHUNK = 4 << 20


def _blob(directory: Path, data: bytes) -> Tuple[str, int]:
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    (directory / digest.split(':')[1]).write_bytes(data)
    return digest, len(data)


def _random_layer(directory: Path, size: int) -> Tuple[str, int]:
    """An uncompressed layer tar holding one file of ``size`` random bytes; its digest and size."""
    handle, partial = tempfile.mkstemp(dir=directory)
    os.close(handle)
    sha = hashlib.sha256()

    class Hashing(io.RawIOBase):
        def __init__(self, out: Any) -> None:
            self.out = out

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            sha.update(data)
            return self.out.write(data)

    class RandomReader(io.RawIOBase):
        def __init__(self, left: int) -> None:
            self.left = left

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            count = min(len(buffer), self.left, CHUNK)
            buffer[:count] = os.urandom(count)
            self.left -= count
            return count

    with open(partial, 'wb') as raw:
        out = Hashing(raw)
        with tarfile.open(fileobj=out, mode='w|', format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo('data/random-{0}'.format(os.urandom(4).hex()))
            info.size, info.mode, info.mtime = size, 0o644, 0
            tar.addfile(info, io.BufferedReader(RandomReader(size), CHUNK))
    digest = 'sha256:' + sha.hexdigest()
    final = directory / digest.split(':')[1]
    os.replace(partial, final)
    return digest, final.stat().st_size


def _rootfs_layer() -> bytes:
    """A tiny root filesystem: a directory and a file saying what the image is."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for name in ('etc', 'data'):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        text = b'backstage.k8s image_import benchmark: random data, not meant to run\n'
        info = tarfile.TarInfo('etc/bench-image')
        info.size, info.mode, info.mtime = len(text), 0o644, 0
        tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


def build_archive(size_mib: int) -> Dict[str, Any]:
    """The cached archive for this size (built when missing): path, name, digest, size."""
    directory = CACHE / 'bench' / 'image-import-{0}mib-v{1}'.format(size_mib, FORMAT)
    meta_path = directory / 'archive.json'
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if Path(meta['archive']).exists():
            meta['built_seconds'] = 0.0
            return meta
    start = time.monotonic()
    blobs = directory / 'blobs' / 'sha256'
    blobs.mkdir(parents=True, exist_ok=True)
    rootfs = _blob(blobs, _rootfs_layer())
    half = size_mib * (1 << 20) // 2
    layers = [rootfs, _random_layer(blobs, half), _random_layer(blobs, size_mib * (1 << 20) - half)]
    tag = '{0}m-v{1}'.format(size_mib, FORMAT)
    config = {
        'architecture': 'amd64', 'os': 'linux',
        'config': {'Cmd': ['/bin/false'], 'Labels': {'org.backstage-k8s.bench': 'image-import'}},
        'rootfs': {'type': 'layers', 'diff_ids': [digest for digest, dummy in layers]},  # uncompressed: diff_id = digest
    }
    config_desc = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': config_desc[0], 'size': config_desc[1]},
        'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': d, 'size': s} for d, s in layers],
    }
    manifest_desc = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {'schemaVersion': 2, 'manifests': [{
        'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': manifest_desc[0], 'size': manifest_desc[1],
        'annotations': {'org.opencontainers.image.ref.name': tag, 'io.containerd.image.name': REPOSITORY + ':' + tag},
    }]}
    archive = directory / 'archive.tar'
    partial = directory / 'archive.tar.partial'
    with tarfile.open(partial, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name, data in (('oci-layout', b'{"imageLayoutVersion":"1.0.0"}'), ('index.json', json.dumps(index).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        for blob in sorted(blobs.iterdir()):
            info = tar.gettarinfo(str(blob), 'blobs/sha256/' + blob.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, '', ''
            with open(blob, 'rb') as handle:
                tar.addfile(info, handle)
    os.replace(partial, archive)
    for blob in blobs.iterdir():
        blob.unlink()
    meta = {'archive': str(archive), 'name': REPOSITORY + ':' + tag, 'digest': manifest_desc[0],
            'layers': [d for d, dummy in layers], 'size': archive.stat().st_size}
    meta_path.write_text(json.dumps(meta, indent=2) + '\n')
    meta['built_seconds'] = round(time.monotonic() - start, 1)
    return meta


def ctr_command() -> List[str]:
    address = os.environ.get('TESTCLUSTER_CONTAINERD_ADDRESS')
    if not address:
        env = subprocess.run([str(REPO / 'tests' / 'cluster' / 'cluster'), 'env'], capture_output=True, text=True,
                             check=True).stdout
        found = re.search(r'^export TESTCLUSTER_CONTAINERD_ADDRESS=(\S+)$', env, re.MULTILINE)
        if not found:
            raise SystemExit('no containerd address: bring the test cluster up (tests/cluster/cluster up)')
        address = found.group(1)
    if not Path(address).exists():
        raise SystemExit('{0} does not exist: bring the test cluster up (tests/cluster/cluster up)'.format(address))
    return ['ctr', '--address', address, '-n', 'k8s.io']


def ctr(command: List[str], *args: str) -> str:
    return subprocess.run(command + list(args), capture_output=True, text=True, check=True).stdout


def remove_image(command: List[str], meta: Dict[str, Any]) -> None:
    """Remove every name pointing at the image (CRI adds one of its own), wait for the garbage
    collector, and check that its layers are gone, so that every import starts from the same state."""
    names = [fields[0] for fields in (line.split() for line in ctr(command, 'images', 'ls').splitlines()[1:])
             if len(fields) >= 3 and (fields[2] == meta['digest'] or fields[0].startswith(REPOSITORY))]
    if names:
        ctr(command, 'images', 'rm', '--sync', *names)
    deadline = time.monotonic() + 60
    while True:
        content = ctr(command, 'content', 'ls', '-q')
        left = [digest for digest in meta['layers'][1:] if digest in content]
        if not left:
            os.sync()  # write back what the removal (and the import before it) left dirty, outside the timing
            return
        if time.monotonic() > deadline:
            raise SystemExit('the containerd still holds {0} after removing the image'.format(', '.join(left)))
        time.sleep(0.5)


TASK_LINE = re.compile(r'^(?:backstage\.k8s\.image_import : )?(.+?) -{2,} (\d+\.\d+)s$')


def playbook(meta: Dict[str, Any], command: List[str], ansible_playbook: str, collections: str,
             extra: Dict[str, Any]) -> Dict[str, Any]:
    variables = dict(extra, image_import_images=[{'name': meta['name'], 'archive': meta['archive']}],
                     image_import_ctr_command=command)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_CALLBACKS_ENABLED='ansible.posix.profile_tasks', ANSIBLE_NOCOLOR='1')
    start = time.monotonic()
    done = subprocess.run([ansible_playbook, str(PLAYBOOK), '-e', json.dumps(variables)], capture_output=True,
                          text=True, env=env, cwd=str(REPO), check=False)
    seconds = time.monotonic() - start
    recap = re.search(r'localhost\s*:.*changed=(\d+).*failed=(\d+)', done.stdout)
    if done.returncode != 0 or not recap:
        raise SystemExit('ansible-playbook failed:\n' + done.stdout[-4000:] + done.stderr[-2000:])
    tasks = {}
    for line in done.stdout.split('TASKS RECAP', 1)[-1].splitlines():
        found = TASK_LINE.match(line.strip())
        if found:
            tasks[found.group(1)] = float(found.group(2))
    return {'seconds': round(seconds, 2), 'changed': int(recap.group(1)), 'tasks': tasks}


def ctr_import(meta: Dict[str, Any], command: List[str]) -> Dict[str, Any]:
    start = time.monotonic()
    ctr(command, 'images', 'import', '--base-name', REPOSITORY, meta['archive'])
    return {'seconds': round(time.monotonic() - start, 2)}


def check_imported(command: List[str], meta: Dict[str, Any]) -> None:
    status = ctr(command, 'images', 'check', 'name==' + meta['name'])
    if meta['digest'] not in status or ' complete ' not in status:
        raise SystemExit('after the import the containerd does not have {0} complete:\n{1}'.format(meta['name'], status))


def collections_path() -> str:
    python = REPO / '.venv' / 'bin' / 'python'
    found = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                           capture_output=True, text=True, check=True).stdout.strip()
    if not (Path(found) / 'ansible_collections' / 'backstage' / 'k8s').exists():
        raise SystemExit('backstage.k8s is not linked into the virtualenv: run make venv')
    return found


def versions(command: List[str], ansible_playbook: str) -> Dict[str, str]:
    ansible = subprocess.run([ansible_playbook, '--version'], capture_output=True, text=True, check=False).stdout
    server = re.search(r'Server:\s+Version:\s+(\S+)', ctr(command, 'version'))
    return {'ansible-core': (re.search(r'core ([0-9.]+)', ansible) or re.search(r'(\S+)', ansible or 'unknown')).group(1),
            'containerd': server.group(1) if server else 'unknown', 'python': platform.python_version(),
            'kernel': platform.release()}


def median(values: List[float]) -> float:
    return round(statistics.median(values), 2)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--size-mib', type=int, default=1024, help='size of the random layers (default 1024)')
    parser.add_argument('--rounds', type=int, default=3, help='fresh imports of each kind (default 3)')
    parser.add_argument('--noop-runs', type=int, default=5, help='no-op re-runs of the role (default 5)')
    parser.add_argument('--role-vars', type=json.loads, default={}, metavar='JSON',
                        help='more variables for the role, e.g. \'{"image_import_poll": 1}\'')
    args = parser.parse_args(argv)

    command = ctr_command()
    ansible_playbook = str(REPO / '.venv' / 'bin' / 'ansible-playbook')
    collections = collections_path()
    meta = build_archive(args.size_mib)
    with open(meta['archive'], 'rb') as handle:  # the same page cache state for the first import as for the others
        while handle.read(CHUNK):
            pass
    role, plain, noop = [], [], []  # type: List[Dict[str, Any]], List[Dict[str, Any]], List[Dict[str, Any]]
    try:
        for round_number in range(args.rounds):
            for kind in (('role', 'ctr') if round_number % 2 == 0 else ('ctr', 'role')):
                remove_image(command, meta)
                if kind == 'role':
                    run = playbook(meta, command, ansible_playbook, collections, args.role_vars)
                    if run['changed'] != 1:
                        raise SystemExit('the role did not import the image: changed={0}'.format(run['changed']))
                    role.append(run)
                else:
                    plain.append(ctr_import(meta, command))
                check_imported(command, meta)
        for dummy in range(args.noop_runs):
            run = playbook(meta, command, ansible_playbook, collections, args.role_vars)
            if run['changed'] != 0:
                raise SystemExit('the re-run changed something: changed={0}'.format(run['changed']))
            noop.append(run)
    finally:
        remove_image(command, meta)

    find_task = 'Find which images the cluster does not have yet'
    result = {
        'benchmark': 'image_import',
        'date': time.strftime('%Y-%m-%d'),
        'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()},
        'versions': versions(command, ansible_playbook),
        'image': {'name': meta['name'], 'digest': meta['digest'], 'archive_bytes': meta['size'],
                  'layers': len(meta['layers']), 'built_seconds': meta['built_seconds']},
        'rounds': args.rounds,
        'role_vars': args.role_vars,
        'role_import_seconds': [r['seconds'] for r in role],
        'ctr_import_seconds': [r['seconds'] for r in plain],
        'noop_seconds': [r['seconds'] for r in noop],
        'median': {'role_import': median([r['seconds'] for r in role]),
                   'ctr_import': median([r['seconds'] for r in plain]),
                   'noop': median([r['seconds'] for r in noop]),
                   'noop_find_task': median([r['tasks'].get(find_task, 0.0) for r in noop]),
                   'noop_role_tasks': median([sum(r['tasks'].values()) for r in noop])},
        'role_import_tasks_last': role[-1]['tasks'],
        'noop_tasks_last': noop[-1]['tasks'],
    }
    result['ratio_role_to_ctr'] = round(result['median']['role_import'] / result['median']['ctr_import'], 2)
    result['goals'] = {'role_at_most_1.2x_ctr': result['ratio_role_to_ctr'] <= 1.2,
                       'noop_under_3s': result['median']['noop'] < 3.0}
    print(json.dumps(result, indent=2))
    median_of = result['median']
    print('image {0} ({1:.0f} MiB): role import {2:.1f} s, ctr import {3:.1f} s (x{4:.2f}); no-op re-run {5:.2f} s '
          '(role tasks {6:.2f} s, find {7:.2f} s); medians of {8}/{8}/{9} runs'.format(
              meta['name'], meta['size'] / (1 << 20), median_of['role_import'], median_of['ctr_import'],
              result['ratio_role_to_ctr'], median_of['noop'], median_of['noop_role_tasks'], median_of['noop_find_task'],
              args.rounds, args.noop_runs), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
