"""Side by side with the official Backstage Helm chart: deploy and no-op re-run on the test cluster.

For each round, on the same cluster, one stack at a time (the order turns from round to round),
each in an empty namespace that is deleted before the next stack starts:
  helm_at_once: site.yml --tags pki,postgres (the collection's PKI and TLS-only PostgreSQL; not
        timed), then `helm upgrade --install --wait` of the chart (cold), then the same command
        again with nothing changed (no-op, --noop-runs times). The chart runs with
        postgresql.enabled=false and the backend the backstage role runs: the same image, command,
        replicas, rolling-update strategy, resources, probes, security contexts, NODE_OPTIONS,
        PodDisruptionBudget, Ingress (class and host) and app-config (rendered from the role's own
        defaults and vars by bench/backstage-settings.yml), reaching that PostgreSQL over verified
        TLS with the client certificate of the Secret the pki role made, mounted through the chart's
        extraVolumes. Every replica starts at once, as the chart does;
  helm_one_first: the same, but cold in the backstage role's start order: the same command with one
        replica, then with all of them (the cold time is the sum). Backends that start together on
        an empty database race on the plugins' migrations, and the loser hangs until its startup
        probe gives up (MigrationLocked); the role starts one pod first for that reason;
  role: the same PKI and PostgreSQL, then site.yml --tags backstage (cold: the backstage role's
        objects absent), then again (no-op);
  site: the whole site.yml into an empty namespace (cold), then again (no-op).
After each cold deploy, and before the no-op runs, Backstage must answer through the Ingress (guest
sign-in, then the catalog API listing entities): a stack that does not answer fails the run.
A helm no-op must leave the Deployment's generation and pods as they were.

    tests/cluster/cluster up
    .venv/bin/python bench/helm.py --rounds 3

Prints one JSON document and a short summary. Needs `make venv`, the test cluster and Go (Helm is
built once by tests/build-helm into $BACKSTAGE_K8S_CACHE/helm/); builds and imports the test images
first. No secret reaches the controller: the chart mounts the Secret the pki role created.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from availability import CATALOG_PATH, _get, guest_token
from deploy import BIN, REPO, ansible_env, delete_namespaces, kubectl, site, testcluster_vars, timed_run

CACHE = Path(os.environ.get('BACKSTAGE_K8S_CACHE')
             or Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'backstage-k8s')
# backstage/charts 2.8.2 with its Bitnami dependencies in place (see that directory's README).
DEFAULT_CHART = REPO.parent / 'shared' / 'anchors' / 'backstage-charts' / 'charts' / 'backstage'
RELEASE = 'backstage'
STACKS = ('helm_at_once', 'helm_one_first', 'role', 'site')


def helm_env() -> dict[str, str]:
    """Helm's own configuration, cache and data under the cache, not in the user's home."""
    env = dict(os.environ)
    home = CACHE / 'helm' / 'home'
    for name in ('config', 'cache', 'data'):
        env['HELM_{0}_HOME'.format(name.upper())] = str(home / name)
    return env


def chart_values(settings: dict[str, Any]) -> dict[str, Any]:
    """The chart's values for the backend the backstage role runs (settings from backstage-settings.yml)."""
    repository, tag = settings['image'].rsplit(':', 1)
    # The chart appends `--config <installDir>/app-config-from-configmap.yaml` for backstage.appConfig.
    command = settings['command'][:-2]
    probe = {'periodSeconds': settings['probe_period_seconds'], 'timeoutSeconds': settings['probe_timeout_seconds']}
    return {
        'postgresql': {'enabled': False},
        'backstage': {
            'replicas': settings['replicas'],
            'revisionHistoryLimit': 5,
            'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxUnavailable': 0, 'maxSurge': 1}},
            'image': {'registry': '', 'repository': repository, 'tag': tag,
                      'pullPolicy': settings['image_pull_policy']},
            'command': command[:2],
            'args': command[2:],
            'installDir': '/app',
            'appConfig': settings['app_config'],
            'containerPorts': {'backend': settings['port']},
            'extraEnvVars': [{'name': 'NODE_OPTIONS', 'value': settings['node_options']}],
            'extraVolumes': [
                {'name': 'postgres-client-tls',
                 'secret': {'secretName': settings['client_secret_name'], 'defaultMode': 0o440}},
                {'name': 'tmp', 'emptyDir': {'sizeLimit': '512Mi'}},
            ],
            'extraVolumeMounts': [
                {'name': 'postgres-client-tls', 'mountPath': settings['client_tls_dir'], 'readOnly': True},
                {'name': 'tmp', 'mountPath': '/tmp'},
            ],
            'resources': settings['resources'],
            # As the backstage role's template: every second, up to the role's attempts.
            'startupProbe': {'httpGet': {'path': settings['readiness_probe_path'], 'port': 'backend'},
                             'periodSeconds': 1, 'timeoutSeconds': settings['probe_timeout_seconds'],
                             'failureThreshold': settings['startup_probe_failure_threshold']},
            'readinessProbe': dict(probe, httpGet={'path': settings['readiness_probe_path'], 'port': 'backend'},
                                   failureThreshold=settings['readiness_probe_failure_threshold']),
            'livenessProbe': dict(probe, httpGet={'path': settings['liveness_probe_path'], 'port': 'backend'},
                                  failureThreshold=settings['liveness_probe_failure_threshold']),
            'podSecurityContext': {'runAsNonRoot': True, 'runAsUser': settings['run_as_user'],
                                   'runAsGroup': settings['run_as_group'], 'fsGroup': settings['run_as_group'],
                                   'seccompProfile': {'type': 'RuntimeDefault'}},
            'containerSecurityContext': {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True,
                                         'runAsNonRoot': True, 'capabilities': {'drop': ['ALL']}},
            'pdb': {'create': True, 'minAvailable': settings['pdb_min_available']},
        },
        'ingress': {'enabled': True, 'className': settings['ingress_class_name'], 'host': settings['ingress_host']},
    }


def role_settings(vars_file: Path, namespace: str, out: Path) -> dict[str, Any]:
    subprocess.run([str(BIN / 'ansible-playbook'), str(REPO / 'bench' / 'backstage-settings.yml'),
                    '-e', '@' + str(vars_file), '-e', 'backstage_namespace=' + namespace,
                    '-e', 'backstage_ingress_host=' + namespace + '.localhost',
                    '-e', 'backstage_base_url=http://' + namespace + '.localhost',
                    '-e', 'bench_settings_file=' + str(out)],
                   check=True, capture_output=True, env=ansible_env(), cwd=REPO)
    return json.loads(out.read_text())


def helm_upgrade(helm: str, chart: Path, kubeconfig: str, namespace: str, values_file: Path,
                 timeout: int) -> dict[str, Any]:
    argv = [helm, 'upgrade', '--install', RELEASE, str(chart), '--namespace', namespace, '--kubeconfig', kubeconfig,
            '--values', str(values_file), '--wait', '--timeout', '{0}s'.format(timeout)]
    run, seconds, cpu = timed_run(argv, env=helm_env())
    if run.returncode != 0:
        sys.stderr.write(run.stdout[-3000:] + run.stderr[-3000:])
        raise RuntimeError('helm upgrade --install failed in namespace {0}'.format(namespace))
    revision = next((line.split(':', 1)[1].strip() for line in run.stdout.splitlines() if line.startswith('REVISION:')), None)
    return {'seconds': round(seconds, 1), 'cpu_seconds': round(cpu, 2), 'revision': revision}


def backend_state(env: dict[str, str], namespace: str, selector: str) -> dict[str, Any]:
    """The backend Deployment's generation and its pods (names, restarts): what a no-op must not change."""
    deployments = json.loads(kubectl(env, 'get', 'deployments', '-n', namespace, '-l', selector, '-o', 'json'))['items']
    pods = json.loads(kubectl(env, 'get', 'pods', '-n', namespace, '-l', selector, '-o', 'json'))['items']
    return {'generation': [d['metadata']['generation'] for d in deployments],
            'pods': sorted(p['metadata']['name'] for p in pods),
            'restarts': sum(c.get('restartCount', 0) for p in pods for c in p.get('status', {}).get('containerStatuses', []))}


def answers(ingress_url: str, host: str, wait: float = 180) -> dict[str, Any]:
    """Backstage through the Ingress: guest sign-in, then the catalog API with entities in it."""
    start = time.monotonic()
    token = guest_token(ingress_url, host, wait=wait)
    while True:
        status, body = _get(ingress_url + CATALOG_PATH, host, token, 10)
        entities = json.loads(body) if status == 200 else None
        if isinstance(entities, list) and entities:
            break
        if time.monotonic() - start > wait:
            raise RuntimeError('the catalog through the Ingress ({0}) did not list entities: {1} {2!r}'.format(
                host, status, body[:200]))
        time.sleep(2)
    root_status, dummy = _get(ingress_url + '/', host, None, 10)
    return {'catalog_entities': len(entities), 'root_status': root_status,
            'seconds_after_deploy': round(time.monotonic() - start, 1)}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def measure_helm(ctx: dict[str, Any], namespace: str, noop_runs: int, one_first: bool) -> dict[str, Any]:
    """The chart: cold with every replica at once (`helm upgrade --install --wait`, as a chart user
    runs it) or, with ``one_first``, with the backstage role's start order (the same command with one
    replica, then again with all of them; the time is the sum), then the no-op runs."""
    setup = site(ctx['vars_file'], namespace, profile=False, tags='pki,postgres')
    settings = role_settings(ctx['vars_file'], namespace, ctx['tmp'] / 'settings-{0}.json'.format(namespace))
    values = chart_values(settings)
    values_file = ctx['tmp'] / 'values-{0}.json'.format(namespace)
    selector = 'app.kubernetes.io/instance={0},app.kubernetes.io/component=backstage'.format(RELEASE)
    run = [ctx['helm'], ctx['chart'], ctx['kubeconfig'], namespace, values_file, ctx['timeout']]
    steps = []
    if one_first and values['backstage']['replicas'] > 1:
        values_file.write_text(json.dumps(dict(values, backstage=dict(values['backstage'], replicas=1)), indent=2))
        steps.append(helm_upgrade(*run))
    values_file.write_text(json.dumps(values, indent=2))
    steps.append(helm_upgrade(*run))
    cold = {'seconds': round(sum(step['seconds'] for step in steps), 1), 'steps': [step['seconds'] for step in steps],
            'cpu_seconds': round(sum(step['cpu_seconds'] for step in steps), 2), 'load': load()}
    # Restarts here are backends that lost the race on the empty database (MigrationLocked) and
    # hung until the startup probe gave up on them.
    cold['backend_restarts'] = backend_state(ctx['env'], namespace, selector)['restarts']
    check = answers(ctx['ingress_url'], namespace + '.localhost')
    before = backend_state(ctx['env'], namespace, selector)
    noops = []
    for dummy in range(noop_runs):
        noop = dict(helm_upgrade(*run), load=load())
        after = backend_state(ctx['env'], namespace, selector)
        noop['unchanged'] = after['generation'] == before['generation'] and after['pods'] == before['pods']
        noops.append(noop)
    return {'setup_pki_postgres': setup, 'cold': cold, 'noop': noops, 'answers': check}


def measure_role(ctx: dict[str, Any], namespace: str, noop_runs: int) -> dict[str, Any]:
    setup = site(ctx['vars_file'], namespace, profile=False, tags='pki,postgres')
    cold = dict(site(ctx['vars_file'], namespace, profile=True, tags='backstage'), load=load())
    selector = 'app.kubernetes.io/instance=backstage,app.kubernetes.io/component=backend'
    check = answers(ctx['ingress_url'], namespace + '.localhost')
    cold['backend_restarts'] = backend_state(ctx['env'], namespace, selector)['restarts']
    noops = [dict(site(ctx['vars_file'], namespace, profile=False, tags='backstage'), load=load())
             for dummy in range(noop_runs)]
    return {'setup_pki_postgres': setup, 'cold': cold, 'noop': noops, 'answers': check}


def measure_site(ctx: dict[str, Any], namespace: str, noop_runs: int) -> dict[str, Any]:
    cold = dict(site(ctx['vars_file'], namespace, profile=True), load=load())
    check = answers(ctx['ingress_url'], namespace + '.localhost')
    noops = [dict(site(ctx['vars_file'], namespace, profile=False), load=load()) for dummy in range(noop_runs)]
    return {'cold': cold, 'noop': noops, 'answers': check}


def versions(env: dict[str, str], helm: str, chart: Path) -> dict[str, Any]:
    server = json.loads(kubectl(env, 'version', '-o', 'json'))['serverVersion']['gitVersion']
    ansible = subprocess.run([str(BIN / 'ansible-playbook'), '--version'], capture_output=True, text=True,
                             check=True).stdout.splitlines()[0]
    helm_version = subprocess.run([helm, 'version', '--short'], capture_output=True, text=True, env=helm_env(),
                                  check=True).stdout.strip()
    chart_version = next(line.split(':', 1)[1].strip() for line in (chart / 'Chart.yaml').read_text().splitlines()
                         if line.startswith('version:'))
    # Ansible's time is the interpreter's: a libpython linked statically (a distribution's python3)
    # runs it measurably faster than a shared one (pyenv's default build).
    return {'kubernetes': server, 'ansible': ansible, 'helm': helm_version, 'chart': chart_version,
            'python': sys.version.split()[0], 'python_executable': os.path.realpath(sys.executable),
            'python_libpython': libpython(), 'cpus': os.cpu_count()}


def libpython() -> str:
    """'shared' when this interpreter runs from a libpython shared library, 'static' when it is
    linked into the executable, 'unknown' without /proc (sysconfig tells how the library was
    configured, not how this executable was linked)."""
    try:
        maps = Path('/proc/self/maps').read_text()
    except OSError:
        return 'unknown'
    return 'shared' if 'libpython' in maps else 'static'


def spread(values: list[float]) -> dict[str, Any]:
    return {'median': round(statistics.median(values), 2), 'min': min(values), 'max': max(values), 'all': values}


def cold_s(r: dict[str, Any], stack: str) -> float:
    return r[stack]['cold']['seconds']


def noop_s(r: dict[str, Any], stack: str) -> float:
    """A round's no-op time for a stack: the median of its no-op runs (of both Helm stacks for 'helm')."""
    stacks = [s for s in ('helm_at_once', 'helm_one_first') if s in r] if stack == 'helm' else [stack]
    return statistics.median(n['seconds'] for s in stacks for n in r[s]['noop'])


def summarize(rounds: list[dict[str, Any]], stacks: list[str]) -> dict[str, Any]:
    """Medians and ranges of every measured time, and the ratios the goals name, of the medians and
    round by round (each round's stacks measured on the same cluster within minutes)."""
    times = {}
    for stack in stacks:
        times[stack + '_cold_s'] = spread([cold_s(r, stack) for r in rounds])
        times[stack + '_noop_s'] = spread([n['seconds'] for r in rounds for n in r[stack]['noop']])
        # What the command itself used: a loaded machine stretches the wall time, much less this.
        times[stack + '_noop_cpu_s'] = spread([n['cpu_seconds'] for r in rounds for n in r[stack]['noop']])
    helm_noops = [n['seconds'] for r in rounds for s in ('helm_at_once', 'helm_one_first') if s in r for n in r[s]['noop']]
    if helm_noops:
        times['helm_noop_s'] = spread(helm_noops)

    def ratio(num: tuple[str, str], den: tuple[str, str]) -> dict[str, Any]:
        of = {'cold': cold_s, 'noop': noop_s}
        return {'of_medians': round(times['{0}_{1}_s'.format(*num)]['median'] / times['{0}_{1}_s'.format(*den)]['median'], 2),
                'per_round': [round(of[num[1]](r, num[0]) / of[den[1]](r, den[0]), 2) for r in rounds]}

    wanted = {
        'role_cold_over_helm_one_first_cold': (('role', 'cold'), ('helm_one_first', 'cold')),
        'role_cold_over_helm_at_once_cold': (('role', 'cold'), ('helm_at_once', 'cold')),
        'role_noop_over_helm_noop': (('role', 'noop'), ('helm', 'noop')),
        'site_cold_over_helm_one_first_cold': (('site', 'cold'), ('helm_one_first', 'cold')),
        'site_noop_over_helm_noop': (('site', 'noop'), ('helm', 'noop')),
    }
    present = set(stacks) | ({'helm'} if helm_noops else set())
    summary: dict[str, Any] = {
        'times': times,
        'ratios': {name: ratio(num, den) for name, (num, den) in wanted.items() if {num[0], den[0]} <= present},
        'helm_noop_unchanged': all(n['unchanged'] for r in rounds for s in stacks if s.startswith('helm')
                                   for n in r[s]['noop']),
        'backend_restarts_after_cold': {s: [r[s]['cold'].get('backend_restarts') for r in rounds] for s in stacks},
    }
    for stack in ('role', 'site'):
        if stack in stacks:
            summary[stack + '_noop_changed'] = sorted({n['changed'] for r in rounds for n in r[stack]['noop']})
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--noop-runs', type=int, default=2, help='no-op re-runs after each cold deploy')
    parser.add_argument('--chart', type=Path, default=Path(os.environ.get('BACKSTAGE_K8S_HELM_CHART', DEFAULT_CHART)),
                        help='the backstage chart directory, its dependencies in place (default: %(default)s)')
    parser.add_argument('--stacks', default=','.join(STACKS), help='which of {0} to measure'.format(','.join(STACKS)))
    parser.add_argument('--timeout', type=int, default=600, help="helm's --timeout in seconds")
    parser.add_argument('--keep', action='store_true', help='keep the namespaces (deleted by default)')
    args = parser.parse_args()
    stacks = [s for s in STACKS if s in args.stacks.split(',')]

    helm = subprocess.run([str(REPO / 'tests' / 'build-helm')], check=True, capture_output=True,
                          text=True).stdout.strip()
    env = dict(os.environ)
    run_id = uuid.uuid4().hex[:6]
    measure = {'helm_at_once': functools.partial(measure_helm, one_first=False),
               'helm_one_first': functools.partial(measure_helm, one_first=True),
               'role': measure_role, 'site': measure_site}
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        vars_file = Path(tmp) / 'vars.json'
        cluster_vars = testcluster_vars(vars_file)
        ctx = {'vars_file': vars_file, 'tmp': Path(tmp), 'helm': helm, 'chart': args.chart.resolve(),
               'kubeconfig': cluster_vars['backstage_k8s_kubeconfig'], 'timeout': args.timeout,
               'ingress_url': cluster_vars['testcluster_ingress_url'], 'env': env}
        started = {'load': [round(x, 2) for x in os.getloadavg()], 'versions': versions(env, helm, ctx['chart'])}
        for number in range(args.rounds):
            order = [stacks[(number + i) % len(stacks)] for i in range(len(stacks))]
            result: dict[str, Any] = {'order': order}
            for stack in order:
                namespace = 'bench-{0}-{1}-{2}'.format(stack.replace('_', '-'), run_id, number)
                try:
                    result[stack] = measure[stack](ctx, namespace, args.noop_runs)
                finally:
                    if not args.keep:
                        delete_namespaces(env, namespace)
                print('round {0}: {1} cold {2} s, no-op {3} s'.format(
                    number + 1, stack, result[stack]['cold']['seconds'],
                    [n['seconds'] for n in result[stack]['noop']]), file=sys.stderr)
            rounds.append(result)

    output: dict[str, Any] = {'started': started, 'rounds': rounds, 'summary': summarize(rounds, stacks)}
    times = output['summary']['times']
    print('medians: ' + ', '.join('{0} {1} s'.format(key[:-2].replace('_', ' '), value['median'])
                                  for key, value in times.items()), file=sys.stderr)
    ratios = output['summary']['ratios']
    print('ratios (of the medians): ' + ', '.join('{0} {1}x'.format(key, value['of_medians'])
                                                  for key, value in ratios.items()), file=sys.stderr)
    print(json.dumps(output, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
