"""Plugins in separate pods against one backend: memory and CPU at idle and under a bounded request loop.

For each layout, one after the other, in an empty namespace on the test cluster (deleted afterwards):
  single: site.yml as it comes (one backend with every plugin, 2 replicas);
  split:  site.yml with the backends of molecule/split (a gateway, core with auth, catalog and
          proxy, scaffolder, search), the same image.
Once Backstage answers through the Ingress and search has indexed the catalog, the backend pods
are left alone for --idle seconds, then get --rate requests a second for --load seconds through
the Ingress, round-robin over the catalog, search and scaffolder APIs. For each window: every
backend pod's working set (memory usage less inactive file pages, as the kubelet counts it) at the
window's end and its CPU time over the window, from the kubelet's stats summary (the test cluster
has no metrics API), summed per layout; and the requests that failed.

    tests/cluster/cluster up
    .venv/bin/python bench/split.py

Prints one JSON document and a short summary. Needs `make venv` and the test cluster; builds and
imports the test images first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from availability import _get, guest_token  # noqa: E402  (bench/availability.py)
from deploy import REPO, delete_namespaces, kubectl, kubelet_stats, site, testcluster_vars  # noqa: E402  (bench/deploy.py)

LAYOUTS = ('single', 'split')
SPLIT_BACKENDS = yaml.safe_load((REPO / 'molecule' / 'split' / 'inventory' / 'group_vars' / 'all.yml')
                                .read_text())['backstage_k8s_backends']
BACKEND_SELECTOR = 'app.kubernetes.io/name=backstage,app.kubernetes.io/component=backend'
PATHS = ('/api/catalog/entities?limit=20', '/api/search/query?term=example',
         '/api/catalog/entities/by-name/component/default/example-website', '/api/scaffolder/v2/actions')


def sample(env: dict[str, str], namespace: str) -> dict[str, dict[str, Any]]:
    """Each backend pod: its Deployment, working set in bytes and CPU time in seconds so far."""
    pods = json.loads(kubectl(env, 'get', 'pods', '-n', namespace, '-l', BACKEND_SELECTOR, '-o', 'json'))['items']
    names = {pod['metadata']['name'] for pod in pods}
    result = {}
    for stats in kubelet_stats(env)['pods']:
        ref = stats['podRef']
        if ref['namespace'] != namespace or ref['name'] not in names:
            continue
        [backend] = [container for container in stats['containers'] if container['name'] == 'backend']
        result[ref['name']] = {'deployment': ref['name'].rsplit('-', 2)[0],
                               'working_set': backend['memory']['workingSetBytes'],
                               'cpu_s': backend['cpu']['usageCoreNanoSeconds'] / 1e9}
    if set(result) != names:
        raise RuntimeError('the kubelet has no stats for {0}'.format(sorted(names - set(result))))
    return result


def window(env: dict[str, str], namespace: str, seconds: float, ingress_url: str, host: str,
           rate: float) -> dict[str, Any]:
    """Resource use of the backend pods over ``seconds``, with ``rate`` requests a second (0: idle)."""
    token = guest_token(ingress_url, host)
    outcome = {'requests': 0, 'failed': 0, 'latencies': []}
    stop = threading.Event()

    def one(path: str) -> None:
        sent = time.monotonic()
        try:
            status, _body = _get(ingress_url + path, host, token, 10)
            ok = status == 200
        except OSError:
            ok = False
        outcome['latencies'].append(time.monotonic() - sent)
        outcome['requests'] += 1
        outcome['failed'] += 0 if ok else 1

    def loop() -> None:
        number, next_at = 0, time.monotonic()
        while not stop.is_set():
            threading.Thread(target=one, args=(PATHS[number % len(PATHS)],), daemon=True).start()
            number += 1
            next_at += 1 / rate
            stop.wait(max(0.0, next_at - time.monotonic()))

    before = sample(env, namespace)
    sender = threading.Thread(target=loop, daemon=True) if rate > 0 else None
    if sender:
        sender.start()
    time.sleep(seconds)
    stop.set()
    if sender:
        sender.join()
        time.sleep(2)
    after = sample(env, namespace)
    if set(after) != set(before):
        raise RuntimeError('the backend pods changed during the window: {0} -> {1}'.format(sorted(before), sorted(after)))
    deployments: dict[str, dict[str, float]] = {}
    for name, now in after.items():
        entry = deployments.setdefault(now['deployment'], {'pods': 0, 'working_set_mib': 0.0, 'cpu_s': 0.0})
        entry['pods'] += 1
        entry['working_set_mib'] += now['working_set'] / 2 ** 20
        entry['cpu_s'] += now['cpu_s'] - before[name]['cpu_s']
    for entry in deployments.values():
        entry['working_set_mib'] = round(entry['working_set_mib'], 1)
        entry['cpu_s'] = round(entry['cpu_s'], 2)
    latencies = sorted(outcome['latencies'])
    return {
        'seconds': seconds, 'rate': rate, 'deployments': deployments,
        'pods': sum(d['pods'] for d in deployments.values()),
        'working_set_mib': round(sum(d['working_set_mib'] for d in deployments.values()), 1),
        'cpu_s': round(sum(d['cpu_s'] for d in deployments.values()), 2),
        'requests': outcome['requests'], 'failed': outcome['failed'],
        'p50_ms': round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        'p95_ms': round(latencies[int(len(latencies) * 0.95)] * 1000, 1) if latencies else None,
    }


def searched(ingress_url: str, host: str, wait: float) -> float:
    """Seconds until search returns the example entities (its first index runs 30 s after start)."""
    start = time.monotonic()
    token = guest_token(ingress_url, host, wait=wait)
    while time.monotonic() - start < wait:
        status, body = _get(ingress_url + '/api/search/query?term=example', host, token, 10)
        if status == 200 and 'example-website' in body.decode():
            return round(time.monotonic() - start, 1)
        time.sleep(3)
    raise RuntimeError('search through the Ingress ({0}) found nothing in {1} s'.format(host, wait))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--idle', type=float, default=60, help='seconds of the idle window')
    parser.add_argument('--load', type=float, default=60, help='seconds of the request loop')
    parser.add_argument('--rate', type=float, default=10, help='requests a second in the loop')
    parser.add_argument('--layouts', default=','.join(LAYOUTS))
    parser.add_argument('--keep', action='store_true', help='keep the namespaces (deleted by default)')
    args = parser.parse_args()
    env = dict(os.environ)
    run_id = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {'started': {'load': [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory() as tmp:
        vars_file = Path(tmp) / 'vars.json'
        cluster_vars = testcluster_vars(vars_file)
        ingress_url = cluster_vars['testcluster_ingress_url']
        split_file = Path(tmp) / 'split.json'
        split_file.write_text(json.dumps({'backstage_k8s_backends': SPLIT_BACKENDS}))
        for layout in [name for name in LAYOUTS if name in args.layouts.split(',')]:
            namespace = 'bench-{0}-{1}'.format(layout, run_id)
            host = namespace + '.localhost'
            try:
                deployed = site(vars_file, namespace, profile=False,
                                arguments=['-e', '@' + str(split_file)] if layout == 'split' else [])
                result = {'deploy': deployed, 'search_ready_s': searched(ingress_url, host, 300)}
                result['idle'] = window(env, namespace, args.idle, ingress_url, host, 0)
                expected = ({'backstage-backend-' + backend['name'] for backend in SPLIT_BACKENDS}
                            if layout == 'split' else {'backstage-backend'})
                if set(result['idle']['deployments']) != expected:
                    raise RuntimeError('{0}: the backends are {1}, not {2}'.format(
                        layout, sorted(result['idle']['deployments']), sorted(expected)))
                result['loaded'] = window(env, namespace, args.load, ingress_url, host, args.rate)
                results[layout] = result
            finally:
                if not args.keep:
                    delete_namespaces(env, namespace)
            print('{0}: idle {1} MiB, {2} CPU-s; loaded {3} MiB, {4} CPU-s, {5} failed of {6}'.format(
                layout, result['idle']['working_set_mib'], result['idle']['cpu_s'],
                result['loaded']['working_set_mib'], result['loaded']['cpu_s'],
                result['loaded']['failed'], result['loaded']['requests']), file=sys.stderr)
    results['finished'] = {'load': [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
