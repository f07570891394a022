"""Deploy time, no-op re-run and idle footprint of site.yml on the test cluster.

For each round, side by side on the same cluster:
  1. site.yml into an empty namespace (cold deploy: PKI, PostgreSQL, Backstage, rotation CronJob),
     timed to the end of the run, when every rollout is complete; profile_tasks says where the
     time goes;
  2. the same site.yml again, right after (the no-op re-run while the new backends still start
     their plugins): time and changed count;
  3. the lower bound: the objects that run created (Secrets included, so no certificate is issued),
     exported and applied to another empty namespace with one `kubectl apply`, then
     `kubectl rollout status` of the StatefulSet and both Deployments; that namespace is then
     deleted, so that at most two stacks ever share the machine;
  4. after --idle-seconds, the no-op re-run again on the settled stack (the case of a user who
     re-runs site.yml on a running deployment), and in the first round the idle footprint (the
     kubelet's stats summary: CPU and memory working set per container) against the requests and
     limits the roles set.
The round's namespace is deleted before the next round starts.

    tests/cluster/cluster up
    .venv/bin/python bench/deploy.py --rounds 3

Prints one JSON document and a short summary. Needs `make venv` and the test cluster; builds and
imports the test images first. Secrets go from kubectl to kubectl through a pipe, never to disk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / 'tests' / 'cluster' / 'cluster'
BIN = Path(sys.executable).parent
RECAP = re.compile(r'^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.MULTILINE)
PROFILE_LINE = re.compile(r'^(.+?) -{2,} (\d+\.\d+)s$', re.MULTILINE)
# The kinds site.yml creates in its namespace.
KINDS = ('secrets,configmaps,services,serviceaccounts,roles.rbac.authorization.k8s.io,'
         'rolebindings.rbac.authorization.k8s.io,networkpolicies.networking.k8s.io,'
         'poddisruptionbudgets.policy,ingresses.networking.k8s.io,statefulsets.apps,'
         'deployments.apps,cronjobs.batch')
DROPPED_ANNOTATIONS = ('kubectl.kubernetes.io/last-applied-configuration', 'deployment.kubernetes.io/revision')


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env['ANSIBLE_CONFIG'] = str(REPO / 'ansible.cfg')
    env['PATH'] = str(BIN) + os.pathsep + env.get('PATH', '')
    env.update(extra or {})
    return env


def run_kubectl(env: dict[str, str], *args: str, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER), 'kubectl', *args], check=check, capture_output=True, text=True,
                          input=stdin, env=env)


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return run_kubectl(env, *args, stdin=stdin).stdout


def timed_run(argv: list[str], **kwargs: Any) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs a command to its end: its result, its wall time and the CPU time (user + system) of it
    and the processes it waited for (ansible-playbook's workers, Helm's threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    run = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run, seconds, cpu


def site(vars_file: Path, namespace: str, profile: bool, tags: str | None = None,
         arguments: list[str] | None = None) -> dict[str, Any]:
    """site.yml (only the roles of ``tags`` when given, with more ``arguments``) into ``namespace``,
    timed as a whole command."""
    extra = {'ANSIBLE_CALLBACKS_ENABLED': 'ansible.posix.profile_tasks', 'PROFILE_TASKS_TASK_OUTPUT_LIMIT': '12'} if profile else {}
    argv = [str(BIN / 'ansible-playbook'), str(REPO / 'site.yml'), '-e', '@' + str(vars_file),
            '-e', 'backstage_k8s_namespace=' + namespace, '-e', 'backstage_ingress_host=' + namespace + '.localhost',
            '-e', 'backstage_base_url=http://' + namespace + '.localhost'] + (['--tags', tags] if tags else []) \
        + (arguments or [])
    run, seconds, cpu = timed_run(argv, env=ansible_env(extra), cwd=REPO)
    recap = RECAP.search(run.stdout)
    if run.returncode != 0 or not recap:
        sys.stderr.write(run.stdout[-4000:] + run.stderr[-2000:])
        raise RuntimeError('site.yml{0} failed in namespace {1}'.format(' --tags ' + tags if tags else '', namespace))
    result: dict[str, Any] = {'seconds': round(seconds, 1), 'cpu_seconds': round(cpu, 2),
                              'ok': int(recap.group(1)), 'changed': int(recap.group(2))}
    if profile:
        tasks = PROFILE_LINE.findall(run.stdout.split('TASKS RECAP')[-1])
        result['slowest_tasks'] = [[name.strip(), float(took)] for name, took in tasks]
    return result


def clean(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = obj['metadata']
    annotations = {k: v for k, v in (meta.get('annotations') or {}).items() if k not in DROPPED_ANNOTATIONS}
    obj['metadata'] = {'name': meta['name'], 'namespace': namespace, 'labels': meta.get('labels') or {},
                       'annotations': annotations}
    obj.pop('status', None)
    spec = obj.get('spec') or {}
    if obj['kind'] == 'Service':
        for key in ('clusterIP', 'clusterIPs'):
            spec.pop(key, None)
    if obj['kind'] == 'Ingress':
        for rule in spec.get('rules', []):
            if rule.get('host'):
                rule['host'] = namespace + '.localhost'
    if obj['kind'] == 'StatefulSet':
        for claim in spec.get('volumeClaimTemplates', []):
            claim.pop('status', None)
            claim['metadata'] = {'name': claim['metadata']['name']}
    return obj


def lower_bound(env: dict[str, str], source: str, target: str) -> dict[str, Any]:
    exported = json.loads(kubectl(env, 'get', KINDS, '-n', source, '-o', 'json'))
    items = [clean(obj, target) for obj in exported['items']
             if not (obj['kind'] == 'ConfigMap' and obj['metadata']['name'] == 'kube-root-ca.crt')
             and not (obj['kind'] == 'ServiceAccount' and obj['metadata']['name'] == 'default')
             and not (obj['kind'] == 'Secret' and obj.get('type') == 'kubernetes.io/service-account-token')]
    namespace = json.loads(kubectl(env, 'get', 'namespace', source, '-o', 'json'))
    labels = {k: v for k, v in namespace['metadata']['labels'].items() if k != 'kubernetes.io/metadata.name'}
    manifest = {'apiVersion': 'v1', 'kind': 'List',
                'items': [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': target, 'labels': labels}}] + items}
    rollouts = ['{0}/{1}'.format(obj['kind'].lower(), obj['metadata']['name']) for obj in items
                if obj['kind'] in ('StatefulSet', 'Deployment')]
    start = time.monotonic()
    kubectl(env, 'apply', '-f', '-', stdin=json.dumps(manifest))
    failed = []
    for rollout in rollouts:
        # A rollout that does not finish (backends racing on an empty database) is recorded, not fatal.
        status = run_kubectl(env, 'rollout', 'status', '-n', target, '--timeout=300s', rollout, check=False)
        if status.returncode != 0:
            failed.append({'rollout': rollout, 'output': (status.stdout + status.stderr)[-500:]})
    seconds = round(time.monotonic() - start, 1)
    pods = json.loads(kubectl(env, 'get', 'pods', '-n', target, '-o', 'json'))['items']
    restarts = {pod['metadata']['name']: sum(c.get('restartCount', 0) for c in pod.get('status', {}).get('containerStatuses', []))
                for pod in pods}
    return {'seconds': seconds, 'objects': len(items) + 1, 'rollouts': rollouts, 'failed': failed,
            'restarts': {name: count for name, count in restarts.items() if count}}


def quantity(value: str) -> float:
    """CPU in cores or memory in bytes from a Kubernetes quantity."""
    units = {'m': 1e-3, 'Ki': 2**10, 'Mi': 2**20, 'Gi': 2**30, 'k': 1e3, 'M': 1e6, 'G': 1e9}
    match = re.fullmatch(r'([0-9.]+)([A-Za-z]*)', str(value))
    number, unit = float(match.group(1)), match.group(2)
    return number * units.get(unit, 1)


def kubelet_stats(env: dict[str, str]) -> dict[str, Any]:
    """The kubelet's stats summary of the (one) node: CPU and memory of every pod and container."""
    node = json.loads(kubectl(env, 'get', 'nodes', '-o', 'json'))['items'][0]['metadata']['name']
    return json.loads(kubectl(env, 'get', '--raw', '/api/v1/nodes/{0}/proxy/stats/summary'.format(node)))


def footprint(env: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    summary = kubelet_stats(env)
    pods = {pod['metadata']['name']: pod for pod in json.loads(kubectl(env, 'get', 'pods', '-n', namespace, '-o', 'json'))['items']}
    rows = []
    for pod_stats in summary['pods']:
        ref = pod_stats['podRef']
        if ref['namespace'] != namespace or ref['name'] not in pods:
            continue
        specs = {c['name']: c.get('resources', {}) for c in pods[ref['name']]['spec']['containers']}
        for container in pod_stats.get('containers', []):
            resources = specs.get(container['name'], {})
            requests, limits = resources.get('requests', {}), resources.get('limits', {})
            rows.append({
                'pod': ref['name'], 'container': container['name'],
                'cpu_millicores': round(container.get('cpu', {}).get('usageNanoCores', 0) / 1e6, 1),
                'cpu_request_millicores': round(quantity(requests['cpu']) * 1000) if 'cpu' in requests else None,
                'memory_mib': round(container.get('memory', {}).get('workingSetBytes', 0) / 2**20, 1),
                'memory_request_mib': round(quantity(requests['memory']) / 2**20) if 'memory' in requests else None,
                'memory_limit_mib': round(quantity(limits['memory']) / 2**20) if 'memory' in limits else None,
            })
    return sorted(rows, key=lambda row: row['pod'])


def testcluster_vars(vars_file: Path) -> dict[str, Any]:
    """Builds and imports the test images, writes site.yml's variables for the test cluster into
    ``vars_file`` (bench/testcluster-vars.yml) and returns them."""
    subprocess.run([str(BIN / 'ansible-playbook'), str(REPO / 'bench' / 'testcluster-vars.yml'),
                    '-e', 'bench_vars_file=' + str(vars_file)],
                   check=True, capture_output=True, env=ansible_env(), cwd=REPO)
    return json.loads(vars_file.read_text())


def delete_namespaces(env: dict[str, str], *names: str) -> None:
    run_kubectl(env, 'delete', 'namespace', '--ignore-not-found', '--timeout=300s', *names, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--noop-runs', type=int, default=2, help='no-op re-runs per round, right after the deploy '
                                                                 'and again on the settled stack')
    parser.add_argument('--idle-seconds', type=int, default=60,
                        help='wait before the settled no-op re-runs and the footprint')
    parser.add_argument('--keep', action='store_true', help='keep the namespaces (deleted by default)')
    args = parser.parse_args()

    env = dict(os.environ)
    run_id = uuid.uuid4().hex[:6]
    rounds = []
    idle: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        vars_file = Path(tmp) / 'vars.json'
        testcluster_vars(vars_file)
        for number in range(args.rounds):
            site_ns = 'bench-site-{0}-{1}'.format(run_id, number)
            bound_ns = 'bench-bound-{0}-{1}'.format(run_id, number)
            try:
                cold = site(vars_file, site_ns, profile=True)
                print('round {0}: site.yml {1} s, changed {2}'.format(number + 1, cold['seconds'], cold['changed']),
                      file=sys.stderr)
                # Right after the deploy the new backends still start their plugins, on the same CPUs.
                noops = [site(vars_file, site_ns, profile=number == 0) for dummy in range(args.noop_runs)]
                bound = lower_bound(env, site_ns, bound_ns)
                # One stack at a time: the next measurements do not share the machine with this bound.
                if not args.keep:
                    delete_namespaces(env, bound_ns)
                time.sleep(args.idle_seconds)
                if number == 0:
                    idle = footprint(env, site_ns)
                settled = [site(vars_file, site_ns, profile=number == 0) for dummy in range(args.noop_runs)]
            finally:
                if not args.keep:
                    delete_namespaces(env, site_ns, bound_ns)
            rounds.append({'cold': cold, 'noop': noops, 'noop_settled': settled, 'bound': bound})
            print('round {0}: site.yml {1} s, no-op {2} s then settled {3} s (changed {4}), kubectl apply {5} s{6}, '
                  'restarts {7}'.format(
                      number + 1, cold['seconds'], [n['seconds'] for n in noops], [n['seconds'] for n in settled],
                      [n['changed'] for n in noops + settled], bound['seconds'],
                      ' (a rollout did not finish)' if bound['failed'] else '', bound['restarts']),
                  file=sys.stderr)

    cold_s = statistics.median(r['cold']['seconds'] for r in rounds)
    finished = [r['bound']['seconds'] for r in rounds if not r['bound']['failed']]
    bound_s = statistics.median(finished) if finished else float('nan')
    noop_s = statistics.median(n['seconds'] for r in rounds for n in r['noop'])
    settled_s = statistics.median(n['seconds'] for r in rounds for n in r['noop_settled'])
    result = {
        'rounds': rounds,
        'median': {'cold_deploy_s': cold_s, 'kubectl_apply_bound_s': bound_s,
                   'ratio': round(cold_s / bound_s, 2), 'noop_right_after_deploy_s': noop_s,
                   'noop_settled_s': settled_s,
                   'bound_rollouts_failed': sum(1 for r in rounds if r['bound']['failed']),
                   'noop_changed': sorted({n['changed'] for r in rounds for n in r['noop'] + r['noop_settled']})},
        'idle_footprint': idle,
        'idle_total': {
            'cpu_millicores': round(sum(r['cpu_millicores'] for r in idle), 1),
            'cpu_request_millicores': sum(r['cpu_request_millicores'] or 0 for r in idle),
            'memory_mib': round(sum(r['memory_mib'] for r in idle), 1),
            'memory_request_mib': sum(r['memory_request_mib'] or 0 for r in idle),
        },
    }
    print(json.dumps(result, indent=2))
    median = result['median']
    print('cold deploy {0} s vs kubectl apply {1} s: {2}x; no-op re-run {3} s right after, {4} s settled, changed {5}; '
          'idle {6} m CPU, {7} MiB (requests {8} m, {9} MiB)'.format(
              cold_s, bound_s, median['ratio'], noop_s, settled_s, median['noop_changed'],
              result['idle_total']['cpu_millicores'], result['idle_total']['memory_mib'],
              result['idle_total']['cpu_request_millicores'], result['idle_total']['memory_request_mib']),
          file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
