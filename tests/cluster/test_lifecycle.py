"""Lifecycle tests: down cleans up, up restores the cluster with its data, up recovers from a crash.

These restart the cluster (anything else using it is interrupted), so they have their own
target, `make cluster-lifecycle-test`, which runs them on a second instance
(TESTCLUSTER_INSTANCE=1) next to the one other tests use. They leave that cluster up.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

from testcluster import CLUSTER, Cluster, wait_until
from test_cluster import pod, run_to_completion

# the cluster's own processes (clients such as kubectl or a benchmark that name its files are not)
DAEMONS = {"etcd", "kube", "kubelet", "containerd", "socat"}


def cluster_cmd(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout, check=False)


def leftovers(cluster: Cluster) -> dict[str, Any]:
    """Everything of the cluster still present on the host."""
    netns, link, node_ip = (cluster.env[k] for k in ("TESTCLUSTER_NAME", "TESTCLUSTER_HOST_LINK", "TESTCLUSTER_NODE_IP"))
    state = str(Path(cluster.env["KUBECONFIG"]).parent.parent) + "/"
    run = str(Path(cluster.env["TESTCLUSTER_CONTAINERD_ADDRESS"]).parent) + "/"
    processes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        daemon = comm in DAEMONS or comm.startswith(("kube-", "containerd-shim"))
        if (daemon and (state in cmdline or run in cmdline or f"TCP:{node_ip}:" in cmdline)) or f":/{netns}/" in cgroup:
            processes.append(cmdline)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith((state, run))]
    netns_list = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    link_present = subprocess.run(["ip", "link", "show", link], capture_output=True, check=False).returncode == 0
    rules = [rule for rule in subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines()
             if "KUBE-" in rule or "CNI-" in rule]
    return {"processes": processes, "mounts": mounts, "netns": netns in netns_list.split(), "host link": link_present,
            "host iptables rules": rules}


def write_volume(cluster: Cluster, namespace: str, image: str) -> str:
    token = secrets.token_hex(8)
    cluster.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}},
                  namespace)
    run_to_completion(cluster, namespace, pod("writer", image, ["sh", "-c", f"echo {token} > /data/token && sync"],
                                              **volume_spec()))
    return token


def read_volume(cluster: Cluster, namespace: str, image: str, name: str) -> str:
    return run_to_completion(cluster, namespace, pod(name, image, ["cat", "/data/token"], **volume_spec()),
                             timeout=180).strip()


def volume_spec() -> dict[str, Any]:
    return {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            "container": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}}


def test_down_leaves_nothing_behind_and_up_brings_back_objects_and_volume_data(
        cluster: Cluster, namespace: str, busybox_image: str) -> None:
    token = write_volume(cluster, namespace, busybox_image)

    down = cluster_cmd("down")
    assert down.returncode == 0, down.stderr
    assert leftovers(cluster) == {"processes": [], "mounts": [], "netns": False, "host link": False,
                                  "host iptables rules": []}
    assert cluster_cmd("status").returncode != 0

    up = cluster_cmd("up")
    assert up.returncode == 0, up.stderr
    assert cluster.get("pvc", "data", "-n", namespace)["status"]["phase"] == "Bound"
    assert read_volume(cluster, namespace, busybox_image, "reader-after-restart") == token


def test_up_recovers_after_the_daemons_are_killed(cluster: Cluster, namespace: str,
                                                  busybox_image: str) -> None:
    token = write_volume(cluster, namespace, busybox_image)
    run = Path(cluster.env["TESTCLUSTER_CONTAINERD_ADDRESS"]).parent
    for daemon in ("kubelet", "containerd", "kube-apiserver", "etcd"):
        os.kill(int((run / f"{daemon}.pid").read_text()), signal.SIGKILL)
    wait_until("status to notice", lambda: cluster_cmd("status").returncode != 0, timeout=30)

    up = cluster_cmd("up")
    assert up.returncode == 0, up.stderr
    assert cluster_cmd("status").returncode == 0
    assert read_volume(cluster, namespace, busybox_image, "reader-after-crash") == token
