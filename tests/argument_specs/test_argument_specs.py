# Copyright (c) backstage.k8s maintainers
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0

"""Every role refuses bad input with a clear message before it changes anything.

One table of cases per role: a wrong type for every option narrower than ``raw`` (a word for an
int, a list for a dict, ``maybe`` for a bool, a dict for a list), a value outside every
``choices`` list, and a value that breaks each check of the role's validation tasks (names that
are not DNS labels, ports out of range, renewal after the end of a certificate's life, empty
required strings).

Each role runs once, in one ``ansible-playbook``: every case is a host of a generated inventory
(connection local) whose host variables are the case's variables, so the cases run side by side
and a failure stops only its own host. The JSON callback reports, per host and task, whether it
failed or changed something. For each case the test asserts that the run failed, that the task
that failed is the argument spec validation or one of the role's validation tasks, that its
message names the variable and says what is wrong, that no task reported a change, and (when the
test cluster is up) that the case's own namespace, which did not exist before, still does not.

A control case per role, with valid variables and in check mode, must get past the validation,
so that a role rejecting everything would not look like a role rejecting bad input.

Cases marked xfail are bad input that a role does not (yet) refuse clearly and early.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "cluster" / "cluster"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# Unique to this run, so that every case's namespace is new to the cluster.
RUN = secrets.token_hex(3)
SPEC_ACTION = "ansible.builtin.validate_argument_spec"


# ------------------------------------------------------------------------------------ the cases


class Case(NamedTuple):
    """Bad input for one role and what its refusal must look like."""

    role: str
    id: str
    vars: dict[str, Any]
    # "spec": the argument spec validation refuses it; "validate": one of the role's validation tasks.
    stage: str
    # Fragments the failure message must contain (whitespace collapsed): the variable, what is wrong.
    words: tuple[str, ...]
    # Why the role does not refuse it clearly yet (the case is a strict xfail), or None.
    gap: str | None = None
    # The gap lets the role go on and create the case's namespace.
    gap_creates_namespace: bool = False
    # site.yml's --tags (only the checks of the roles they select run).
    tags: str | None = None


def spec_type(role: str, var: str, value: Any, wanted: str) -> Case:
    """A value of the wrong type for an option: the spec validation names it and the wanted type."""
    kind = type(value).__name__
    return Case(role, f"{var}-{kind}-for-{wanted}", {var: value}, "spec", (f"'{var}'", f"convert to {wanted}"))


def spec_choice(role: str, var: str, value: str) -> Case:
    """A value outside an option's choices."""
    return Case(role, f"{var}-not-a-choice", {var: value}, "spec", (f"value of {var} must be one of", f"got: {value}"))


LONG_NAME = "a" * 41 + "-" + "b" * 13  # 55 characters: a DNS label, too long for some names

# Stands for the case's own namespace (new to the cluster) in a case's variables.
NAMESPACE = "{namespace}"
# Kubernetes' own namespaces, which every role refuses; they exist, so they are never a case's own.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def system_namespaces(role: str, var: str, *words: str) -> list[Case]:
    """Each of Kubernetes' own namespaces given to a role: refused by its checks."""
    return [Case(role, f"{var}-{namespace}", {var: namespace}, "validate", words) for namespace in SYSTEM_NAMESPACES]


# A name with whitespace around it. YAML drops that whitespace when the name reaches an object's
# manifest, so a check that let it through ($ also matches before a trailing newline) would have
# the role create the object under the bare name.
NOT_WHOLE = {"trailing-newline": "{}\n", "leading-space": " {}", "trailing-space": "{} "}


def not_whole_name(role: str, var: str, name: str, *words: str) -> list[Case]:
    """A valid name with whitespace around it, one case per shape: refused by the role's checks."""
    return [Case(role, f"{var}-{kind}", {var: shape.format(name)}, "validate", words)
            for kind, shape in NOT_WHOLE.items()]


MICROK8S = [
    spec_choice("microk8s", "microk8s_platform", "windows"),
    *(spec_type("microk8s", var, "two", "int")
      for var in ("microk8s_vm_cpus", "microk8s_vm_memory_gb", "microk8s_vm_disk_gb", "microk8s_wait_timeout")),
    spec_type("microk8s", "microk8s_addons", {"dns": True}, "list"),
    spec_type("microk8s", "microk8s_addon_pods", ["dns"], "dict"),
    spec_type("microk8s", "microk8s_kubeconfig_merge", "maybe", "bool"),
]

IMAGE_BUILD = [
    spec_choice("image_build", "image_build_tool", "buildah"),
    spec_type("image_build", "image_build_app_build", "maybe", "bool"),
    spec_type("image_build", "image_build_options", {"--network": "host"}, "list"),
    spec_type("image_build", "image_build_backend_build_args", {"NODE_EXTRA_CA_CERTS": "/ca.crt"}, "list"),
    Case("image_build", "image_build_app_dir-not-an-app", {"image_build_app_dir": "/nonexistent/app"}, "validate",
         ("image_build_app_dir=/nonexistent/app has no package.json", "@backstage/create-app layout")),
    # The example app of a checkout is not built: refused when the role is told it is.
    Case("image_build", "image_build_app_build-false-on-an-unbuilt-app", {"image_build_app_build": False},
         "validate", ("packages/backend/dist/bundle.tar.gz", "image_build_app_build is false")),
]

IMAGE_IMPORT = [
    spec_type("image_import", "image_import_images", {"name": "app:1.0", "archive": "/app.tar"}, "list"),
    Case("image_import", "image_import_images-item-not-a-dict", {"image_import_images": [7]}, "spec",
         ("image_import_images", "convert to dict")),
    Case("image_import", "image_import_images-item-without-name",
         {"image_import_images": [{"archive": "/app.tar"}]}, "spec",
         ("missing required arguments: name", "image_import_images")),
    Case("image_import", "image_import_images-source-not-a-choice",
         {"image_import_images": [{"name": "app:1.0", "source": "nerdctl"}]}, "spec",
         ("value of source must be one of: docker, podman", "image_import_images")),
    Case("image_import", "image_import_images-archive-and-source",
         {"image_import_images": [{"name": "app:1.0", "archive": "/app.tar", "source": "docker"}]}, "spec",
         ("parameters are mutually exclusive: archive|source found in image_import_images",)),
    Case("image_import", "image_import_images-neither-archive-nor-source",
         {"image_import_images": [{"name": "app:1.0"}]}, "spec",
         ("one of the following is required: archive, source found in image_import_images",)),
    Case("image_import", "image_import_images-archive-null",
         {"image_import_images": [{"name": "app:1.0", "archive": None}]}, "validate",
         ("image_import_images: app:1.0 needs exactly one of archive", "source")),
    spec_choice("image_import", "image_import_method", "push"),
    spec_choice("image_import", "image_import_platform", "windows"),
    spec_type("image_import", "image_import_ctr_command", {"ctr": "--address"}, "list"),
    spec_type("image_import", "image_import_timeout", "soon", "int"),
    spec_type("image_import", "image_import_poll", "often", "int"),
]

PKI = [
    *(spec_type("pki", var, "forty", "int")
      for var in ("pki_leaf_ttl_days", "pki_leaf_renew_after_days", "pki_ca_ttl_days", "pki_ca_renew_days_left")),
    *(spec_type("pki", var, "maybe", "bool")
      for var in ("pki_manage_namespace", "pki_ca_replace", "pki_force_rotation", "pki_ca_rollover_step")),
    spec_type("pki", "pki_postgres_extra_sans", {"DNS": "db.example.com"}, "list"),
    spec_type("pki", "pki_common_labels", ["app.kubernetes.io/instance"], "dict"),
    Case("pki", "pki_namespace-not-a-dns-label", {"pki_namespace": "Backstage_NS"}, "validate",
         ("pki_namespace 'Backstage_NS' is not a namespace for Backstage",)),
    Case("pki", "client-cn-differs-from-database-user", {"pki_backstage_client_common_name": "backstage"}, "validate",
         ("pki_backstage_client_common_name 'backstage' differs from pki_database_user 'postgres'",)),
    Case("pki", "renew-after-zero", {"pki_leaf_renew_after_days": 0}, "validate",
         ("pki_leaf_renew_after_days (0) must be at least 1",)),
    Case("pki", "renew-after-not-before-ttl", {"pki_leaf_renew_after_days": 45, "pki_leaf_ttl_days": 45}, "validate",
         ("pki_leaf_renew_after_days (45) must be at least 1 and less than pki_leaf_ttl_days (45)",)),
    Case("pki", "leaf-ttl-not-below-ca-ttl", {"pki_leaf_ttl_days": 4000, "pki_ca_ttl_days": 3650}, "validate",
         ("pki_leaf_ttl_days (4000), which must be less than pki_ca_ttl_days (3650)",)),
    Case("pki", "leaf-ttl-over-397-days", {"pki_leaf_ttl_days": 398, "pki_ca_ttl_days": 3650}, "validate",
         ("pki_leaf_ttl_days (398)", "A leaf lives at most 397 days")),
    Case("pki", "ca-renewal-window-not-above-leaf-ttl", {"pki_ca_renew_days_left": 45}, "validate",
         ("pki_ca_renew_days_left (45) days left, which must be more than pki_leaf_ttl_days",)),
    Case("pki", "ca-renewal-window-not-below-ca-ttl", {"pki_ca_renew_days_left": 3650}, "validate",
         ("pki_ca_renew_days_left (3650) days left", "less than pki_ca_ttl_days (else a new CA is due at once)")),
    Case("pki", "ca-ttl-over-10-years", {"pki_ca_ttl_days": 3651}, "validate",
         ("pki_ca_ttl_days (3651)", "the CA at most 3650")),
    Case("pki", "pki_ca_secret_name-not-a-name", {"pki_ca_secret_name": "CA_Secret"}, "validate",
         ("pki_ca_secret_name", "'CA_Secret' is not a valid Secret name")),
    Case("pki", "pki_backstage_client_secret_name-not-a-name", {"pki_backstage_client_secret_name": "-client"},
         "validate", ("'-client' is not a valid Secret name",)),
    Case("pki", "pki_database_user-empty", {"pki_database_user": ""}, "validate",
         ("pki_database_user", "empty")),
    *not_whole_name("pki", "pki_namespace", NAMESPACE, "pki_namespace '", "is not a namespace for Backstage"),
    *system_namespaces("pki", "pki_namespace", "is not a namespace for Backstage", "system namespaces"),
    *(case for var, name in (("pki_ca_secret_name", "backstage-pki-ca"),
                             ("pki_postgres_server_secret_name", "postgres-server-tls"),
                             ("pki_backstage_client_secret_name", "backstage-postgres-client-tls"))
      for case in not_whole_name("pki", var, name, f"{var} '", "is not a valid Secret name")),
    *not_whole_name("pki", "pki_database_user", "postgres", "pki_database_user '",
                    "not a usable PostgreSQL user name"),
]

POSTGRES = [
    spec_type("postgres", "postgres_port", "fivefourthreetwo", "int"),
    spec_type("postgres", "postgres_wait_timeout", "soon", "int"),
    *(spec_type("postgres", var, ["a"], "dict")
      for var in ("postgres_resources", "postgres_parameters", "postgres_common_labels")),
    spec_choice("postgres", "postgres_image_pull_policy", "Sometimes"),
    spec_choice("postgres", "postgres_min_tls_version", "TLSv1.1"),
    spec_choice("postgres", "postgres_database_mode", "readonly"),
    Case("postgres", "least-privilege-as-the-superuser",
         {"postgres_database_mode": "least_privilege", "postgres_database_user": "postgres"}, "validate",
         ("postgres_database_mode least_privilege needs a database user other than postgres",)),
    Case("postgres", "postgres_namespace-not-a-dns-label", {"postgres_namespace": "Backstage_NS"}, "validate",
         ("postgres_namespace 'Backstage_NS' is not a namespace for Backstage",)),
    Case("postgres", "postgres_service_name-not-a-dns-label", {"postgres_service_name": "pg.main"}, "validate",
         ("postgres_service_name ('pg.main'", "must be valid Kubernetes names")),
    Case("postgres", "postgres_service_name-too-long", {"postgres_service_name": LONG_NAME}, "validate",
         (f"postgres_service_name ('{LONG_NAME}', at most 54 characters",)),
    Case("postgres", "postgres_tls_secret_name-not-a-name", {"postgres_tls_secret_name": "TLS"}, "validate",
         ("postgres_tls_secret_name ('TLS')", "must be valid Kubernetes names")),
    Case("postgres", "postgres_superuser_secret_name-not-a-name", {"postgres_superuser_secret_name": "su_pw"},
         "validate", ("postgres_superuser_secret_name ('su_pw')", "must be valid Kubernetes names")),
    Case("postgres", "postgres_upgrade_backstage_selector-not-a-label-value",
         {"postgres_upgrade_backstage_selector": {"app.kubernetes.io/component": "back end"}}, "validate",
         ("postgres_upgrade_backstage_selector", "must map at least one label key to its value")),
    Case("postgres", "postgres_database_user-starts-with-digit", {"postgres_database_user": "1user"}, "validate",
         ("postgres_database_user '1user' is not a usable PostgreSQL user name",)),
    Case("postgres", "postgres_database_user-empty", {"postgres_database_user": ""}, "validate",
         ("postgres_database_user '' is not a usable PostgreSQL user name",)),
    Case("postgres", "postgres_port-zero", {"postgres_port": 0}, "validate",
         ("postgres_port (0) must be a TCP port number, 1 to 65535",)),
    Case("postgres", "postgres_port-above-65535", {"postgres_port": 65536}, "validate",
         ("postgres_port (65536) must be a TCP port number, 1 to 65535",)),
    Case("postgres", "postgres_storage_class-missing", {"postgres_storage_class": "no-such-storage-class"}, "validate",
         ("StorageClass 'no-such-storage-class' does not exist in the cluster", "postgres_storage_class")),
    *(Case("postgres", f"postgres_parameters-{case}", {"postgres_parameters": value}, "validate",
           ("postgres_parameters may not set", *words))
      for case, value, words in (
          ("ssl-off", {"ssl": "off"}, ("ssl",)),
          ("hba-file", {"hba_file": "/tmp/pg_hba.conf"}, ("hba_file",)),
          ("tls-1.0", {"ssl_min_protocol_version": "TLSv1"}, ("ssl_min_protocol_version",)),
          ("name-with-newline", {"work_mem\nssl": "off"}, ("Names are lower-case",)),
          ("value-with-newline", {"work_mem": "4MB'\nssl = off"}, ("values have no newline",)))),
    Case("postgres", "postgres_storage_size-not-a-quantity", {"postgres_storage_size": "two gigs"}, "validate",
         ("postgres_storage_size",)),
    *not_whole_name("postgres", "postgres_storage_size", "5Gi", "postgres_storage_size '",
                    "is not a Kubernetes storage quantity"),
    *system_namespaces("postgres", "postgres_namespace", "is not a namespace for Backstage", "system namespaces"),
    *not_whole_name("postgres", "postgres_namespace", NAMESPACE, "postgres_namespace '",
                    "is not a namespace for Backstage"),
    *(case for var, name in (("postgres_service_name", "postgres"), ("postgres_tls_secret_name", "postgres-server-tls"),
                             ("postgres_superuser_secret_name", "postgres-superuser"))
      for case in not_whole_name("postgres", var, name, f"{var} ('", "must be valid Kubernetes names")),
    *not_whole_name("postgres", "postgres_database_user", "postgres", "postgres_database_user '",
                    "is not a usable PostgreSQL user name"),
    spec_type("postgres", "postgres_backstage_backends", {"name": "core", "plugins": ["catalog"]}, "list"),
    Case("postgres", "postgres_backstage_backends-item-not-a-dict", {"postgres_backstage_backends": ["core"]}, "spec",
         ("postgres_backstage_backends", "convert to dict")),
    # Each backend's database role is named after it and owns its plugins' databases: a backend without
    # a name, a name that is not a DNS label (or has whitespace around it), one twice, plugins that are
    # not a list of plugin IDs, none, or a plugin in two backends is refused.
    *(Case("postgres", f"postgres_backstage_backends-{kind}", {"postgres_backstage_backends": backends}, "validate",
           ("postgres_backstage_backends must list backends with distinct names (DNS labels)",
            "every plugin in one backend only"))
      for kind, backends in (
          ("no-name", [{"plugins": ["catalog"]}]),
          ("name-not-a-label", [{"name": "Core", "plugins": ["catalog"]}]),
          ("name-trailing-newline", [{"name": "core\n", "plugins": ["catalog"]}]),
          ("name-twice", [{"name": "core", "plugins": ["catalog"]}, {"name": "core", "plugins": ["search"]}]),
          ("no-plugins", [{"name": "core"}]),
          ("plugins-empty", [{"name": "core", "plugins": []}]),
          ("plugins-a-string", [{"name": "core", "plugins": "catalog"}]),
          ("plugin-not-an-id", [{"name": "core", "plugins": ["Catalog"]}]),
          ("plugin-trailing-newline", [{"name": "core", "plugins": ["catalog\n"]}]),
          ("plugin-in-two-backends", [{"name": "core", "plugins": ["catalog"]},
                                      {"name": "scaffolder", "plugins": ["scaffolder", "catalog"]}]))),
    # In least_privilege mode <user>_<name> is a role, and the CN of the backend's certificate: PostgreSQL
    # would cut a name longer than 63 characters.
    Case("postgres", "postgres_backstage_backends-role-name-too-long",
         {"postgres_database_mode": "least_privilege", "postgres_database_user": "b" * 50,
          "postgres_backstage_backends": [{"name": "a-long-backend", "plugins": ["catalog"]}]}, "validate",
         ("logs in as the role <postgres_database_user>_<name>", f"{'b' * 50}_a_long_backend is not")),
]

BACKSTAGE_INTS = (
    "backstage_replicas", "backstage_frontend_replicas", "backstage_pdb_min_available", "backstage_database_port",
    "backstage_database_cert_min_days_left", "backstage_port", "backstage_run_as_user", "backstage_run_as_group",
    "backstage_startup_probe_failure_threshold", "backstage_probe_period_seconds", "backstage_probe_timeout_seconds",
    "backstage_readiness_probe_failure_threshold", "backstage_liveness_probe_failure_threshold",
    "backstage_frontend_port", "backstage_frontend_run_as_user", "backstage_frontend_run_as_group",
    "backstage_rollout_timeout", "backstage_shutdown_delay_seconds",
)
BACKSTAGE_LISTS = (
    "backstage_image_pull_secrets", "backstage_database_network_policy_extra_peers", "backstage_command",
    "backstage_extra_env", "backstage_extra_secrets",
)
BACKSTAGE_DICTS = (
    "backstage_ingress_annotations", "backstage_database_pod_selector", "backstage_resources",
    "backstage_extra_app_config", "backstage_frontend_resources", "backstage_frontend_extra_app_config",
)

BACKSTAGE = [
    *(spec_type("backstage", var, "ten", "int") for var in BACKSTAGE_INTS),
    spec_type("backstage", "backstage_database_network_policy", "maybe", "bool"),
    *(spec_type("backstage", var, {"a": "b"}, "list") for var in BACKSTAGE_LISTS),
    *(spec_type("backstage", var, ["a"], "dict") for var in BACKSTAGE_DICTS),
    Case("backstage", "backstage_extra_env-item-not-a-dict", {"backstage_extra_env": [7]}, "spec",
         ("backstage_extra_env", "convert to dict")),
    spec_choice("backstage", "backstage_image_pull_policy", "Sometimes"),
    spec_choice("backstage", "backstage_frontend_image_pull_policy", "Sometimes"),
    Case("backstage", "backstage_image-empty", {"backstage_image": ""}, "validate",
         ("Set backstage_image and backstage_frontend_image to the backend and frontend image references",)),
    Case("backstage", "backstage_frontend_image-empty", {"backstage_frontend_image": ""}, "validate",
         ("Set backstage_image and backstage_frontend_image to the backend and frontend image references",)),
    Case("backstage", "backstage_replicas-zero", {"backstage_replicas": 0}, "validate",
         ("keep backstage_replicas and backstage_frontend_replicas at 1 or more",)),
    Case("backstage", "backstage_frontend_replicas-zero", {"backstage_frontend_replicas": 0}, "validate",
         ("keep backstage_replicas and backstage_frontend_replicas at 1 or more",)),
    Case("backstage", "pdb-min-available-not-below-replicas",
         {"backstage_replicas": 2, "backstage_pdb_min_available": 2}, "validate",
         ("backstage_pdb_min_available below backstage_replicas",)),
    # Split backends: each a distinct DNS label short enough for its objects' names, plugins given and
    # each in one backend only, exactly one gateway, replicas of 1 or more.
    *(Case("backstage", f"backstage_backends-{kind}", {"backstage_backends": backends}, "validate",
           ("backstage_backends must list backends with distinct names", "exactly one backend with the gateway plugin"))
      for kind, backends in (
          ("no-gateway", [{"name": "core", "plugins": ["catalog"]}]),
          ("two-gateways", [{"name": "a", "plugins": ["gateway"]}, {"name": "b", "plugins": ["gateway", "catalog"]}]),
          ("name-twice", [{"name": "a", "plugins": ["gateway"]}, {"name": "a", "plugins": ["catalog"]}]),
          ("name-not-a-label", [{"name": "Core", "plugins": ["catalog"]}, {"name": "gw", "plugins": ["gateway"]}]),
          ("name-trailing-newline", [{"name": "core\n", "plugins": ["catalog"]}, {"name": "gw", "plugins": ["gateway"]}]),
          ("name-too-long", [{"name": "c" * 46, "plugins": ["catalog"]}, {"name": "gw", "plugins": ["gateway"]}]),
          ("no-plugins", [{"name": "core", "plugins": []}, {"name": "gw", "plugins": ["gateway"]}]),
          ("plugin-twice", [{"name": "core", "plugins": ["catalog"]}, {"name": "gw", "plugins": ["gateway", "catalog"]}]),
          ("plugin-not-an-id", [{"name": "core", "plugins": ["Catalog"]}, {"name": "gw", "plugins": ["gateway"]}]),
          ("zero-replicas", [{"name": "core", "plugins": ["catalog"], "replicas": 0}, {"name": "gw", "plugins": ["gateway"]}]),
    )),
    Case("backstage", "backstage_backends-entry-without-plugins", {"backstage_backends": [{"name": "core"}]}, "spec",
         ("plugins",)),
    Case("backstage", "backstage_base_url-not-http", {"backstage_base_url": "backstage.example.com"}, "validate",
         ("backstage_base_url must be an absolute http(s) URL", "got 'backstage.example.com'")),
    Case("backstage", "backstage_base_url-trailing-slash", {"backstage_base_url": "http://backstage.example.com/"},
         "validate", ("backstage_base_url must be an absolute http(s) URL without a trailing slash",)),
    *not_whole_name("backstage", "backstage_base_url", "http://backstage.example.com",
                    "backstage_base_url must be an absolute http(s) URL"),
    Case("backstage", "backstage_base_url-space-in-path", {"backstage_base_url": "http://backstage.example.com/a b"},
         "validate", ("backstage_base_url must be an absolute http(s) URL",)),
    *not_whole_name("backstage", "backstage_database_host", "postgres.backstage.svc.cluster.local",
                    "backstage_database_host must be a DNS name"),
    Case("backstage", "backstage_database_host-ip-address", {"backstage_database_host": "10.152.183.20"}, "validate",
         ("backstage_database_host must be a DNS name", "an IP address is not in the certificate")),
    Case("backstage", "backstage_database_host-empty", {"backstage_database_host": ""}, "validate",
         ("backstage_database_host must be a DNS name", "Got ''")),
    Case("backstage", "backstage_image-list-for-str", {"backstage_image": ["backstage:1.0"]}, "spec",
         ("'backstage_image'", "convert to str"),
         gap="a list for a str option passes: the argument spec turns it into its text (ansible-core converts "
             "any value to str), here the image reference \"['backstage:1.0']\""),
    Case("backstage", "backstage_namespace-not-a-dns-label", {"backstage_namespace": "Backstage_NS"}, "validate",
         ("backstage_namespace", "is not a namespace for Backstage")),
    Case("backstage", "backstage_port-above-65535", {"backstage_port": 70000}, "validate",
         ("backstage_port", "65535")),
    *system_namespaces("backstage", "backstage_namespace", "is not a namespace for Backstage", "system namespaces"),
    *not_whole_name("backstage", "backstage_namespace", NAMESPACE, "backstage_namespace '",
                    "is not a namespace for Backstage"),
]

CERT_ROTATION_INTS = (
    "cert_rotation_renew_after_days", "cert_rotation_min_days_left", "cert_rotation_leaf_ttl_days",
    "cert_rotation_postgres_port", "cert_rotation_successful_jobs_history_limit",
    "cert_rotation_failed_jobs_history_limit", "cert_rotation_backoff_limit", "cert_rotation_active_deadline_seconds",
    "cert_rotation_starting_deadline_seconds", "cert_rotation_ttl_seconds_after_finished",
    "cert_rotation_rollout_timeout", "cert_rotation_reload_timeout", "cert_rotation_pause_after_issue_seconds",
)

CERT_ROTATION = [
    *(spec_type("cert_rotation", var, "ten", "int") for var in CERT_ROTATION_INTS),
    *(spec_type("cert_rotation", var, "maybe", "bool")
      for var in ("cert_rotation_suspend", "cert_rotation_force", "cert_rotation_job_wait",
                  "cert_rotation_admission_policy")),
    *(spec_type("cert_rotation", var, {"a": "b"}, "list")
      for var in ("cert_rotation_image_pull_secrets", "cert_rotation_dns_peers", "cert_rotation_api_server_peers",
                  "cert_rotation_backstage_backends")),
    Case("cert_rotation", "cert_rotation_backstage_backends-item-not-a-dict", {"cert_rotation_backstage_backends": [7]},
         "spec", ("cert_rotation_backstage_backends", "convert to dict")),
    # Each backend's Deployment and Secret are named after it, and the job's Role names each one: a
    # backend without a name, a name that is not a DNS label, one with whitespace around it or one
    # twice is refused.
    *(Case("cert_rotation", f"cert_rotation_backstage_backends-{kind}",
           {"cert_rotation_backstage_backends": backends}, "validate",
           ("cert_rotation_backstage_backends (", "must be the backstage role's backstage_backends, each backend once"))
      for kind, backends in (
          ("no-name", [{"plugins": ["catalog"]}]),
          ("name-not-a-label", [{"name": "Core", "plugins": ["catalog"]}]),
          ("name-trailing-newline", [{"name": "core\n", "plugins": ["catalog"]}]),
          ("name-twice", [{"name": "a", "plugins": ["gateway"]}, {"name": "a", "plugins": ["catalog"]}]))),
    Case("cert_rotation", "cert_rotation_api_server_peers-no-prefix",
         {"cert_rotation_api_server_peers": [{"cidr": "10.152.183.1", "port": 443}]}, "validate",
         ("cert_rotation_api_server_peers item", "{cidr: ADDRESS/PREFIX, port: PORT}")),
    *(spec_type("cert_rotation", var, ["a"], "dict")
      for var in ("cert_rotation_postgres_pod_selector", "cert_rotation_resources", "cert_rotation_job_extra_vars",
                  "cert_rotation_common_labels")),
    spec_choice("cert_rotation", "cert_rotation_image_pull_policy", "Sometimes"),
    spec_choice("cert_rotation", "cert_rotation_postgres_mode", "hup"),
    spec_choice("cert_rotation", "cert_rotation_database_mode", "readonly"),
    spec_choice("cert_rotation", "cert_rotation_runner", "remote"),
    Case("cert_rotation", "cert_rotation_namespace-not-a-dns-label", {"cert_rotation_namespace": "Backstage_NS"},
         "validate", ("cert_rotation_namespace ('Backstage_NS')", "must be valid Kubernetes names")),
    Case("cert_rotation", "cert_rotation_name-not-a-dns-label", {"cert_rotation_name": "cert_rotation"}, "validate",
         ("cert_rotation_name ('cert_rotation'", "must be valid Kubernetes names")),
    Case("cert_rotation", "cert_rotation_name-too-long", {"cert_rotation_name": LONG_NAME}, "validate",
         (f"cert_rotation_name ('{LONG_NAME}', at most 40 characters",)),
    Case("cert_rotation", "renew-after-zero", {"cert_rotation_renew_after_days": 0}, "validate",
         ("cert_rotation_renew_after_days (0)", "keep renew-after at 1 or more")),
    Case("cert_rotation", "renew-after-not-before-ttl",
         {"cert_rotation_renew_after_days": 45, "cert_rotation_leaf_ttl_days": 45}, "validate",
         ("cert_rotation_leaf_ttl_days (45)", "cert_rotation_renew_after_days (45)", "below the TTL")),
    Case("cert_rotation", "min-days-left-not-before-ttl",
         {"cert_rotation_min_days_left": 45, "cert_rotation_leaf_ttl_days": 45}, "validate",
         ("cert_rotation_min_days_left (45)", "min-days-left at 0 or more and below the TTL")),
    Case("cert_rotation", "min-days-left-negative", {"cert_rotation_min_days_left": -1}, "validate",
         ("cert_rotation_min_days_left (-1)", "0 or more")),
    Case("cert_rotation", "cert_rotation_image-empty", {"cert_rotation_image": ""}, "validate",
         ("Set cert_rotation_image to the certificate rotation runner image",)),
    Case("cert_rotation", "cert_rotation_schedule-not-cron", {"cert_rotation_schedule": "every day"}, "validate",
         ("cert_rotation_schedule",)),
    Case("cert_rotation", "cert_rotation_schedule-time-zone-prefix", {"cert_rotation_schedule": "TZ=UTC 17 3 * * *"},
         "validate", ("cert_rotation_schedule 'TZ=UTC 17 3 * * *' is not a cron schedule", "TZ=")),
    *not_whole_name("cert_rotation", "cert_rotation_schedule", "17 3 * * *", "cert_rotation_schedule '",
                    "is not a cron schedule"),
    Case("cert_rotation", "cert_rotation_postgres_port-above-65535", {"cert_rotation_postgres_port": 70000},
         "validate", ("cert_rotation_postgres_port", "65535")),
    *system_namespaces("cert_rotation", "cert_rotation_namespace", "must be valid Kubernetes names",
                       "system namespaces"),
    *not_whole_name("cert_rotation", "cert_rotation_namespace", NAMESPACE, "cert_rotation_namespace ('",
                    "must be valid Kubernetes names"),
    *not_whole_name("cert_rotation", "cert_rotation_name", "backstage-cert-rotation", "cert_rotation_name ('",
                    "must be valid Kubernetes names"),
]

POSTGRES_BACKUP = [
    spec_type("postgres_backup", "postgres_backup_retention", "seven", "int"),
    spec_type("postgres_backup", "postgres_backup_suspend", "maybe", "bool"),
    spec_type("postgres_backup", "postgres_backup_s3", ["s3://bucket"], "dict"),
    spec_choice("postgres_backup", "postgres_backup_restore_from", "ftp"),
    spec_choice("postgres_backup", "postgres_backup_image_pull_policy", "Sometimes"),
    Case("postgres_backup", "postgres_backup_namespace-not-a-dns-label", {"postgres_backup_namespace": "Backstage_NS"},
         "validate", ("postgres_backup_namespace ('Backstage_NS')", "must be valid Kubernetes names")),
    Case("postgres_backup", "postgres_backup_name-too-long", {"postgres_backup_name": LONG_NAME}, "validate",
         ("postgres_backup_name", "at most 40 characters")),
    Case("postgres_backup", "postgres_backup_database_user-bad", {"postgres_backup_database_user": "post gres"},
         "validate", ("postgres_backup_database_user 'post gres' is not a usable PostgreSQL user name",)),
    Case("postgres_backup", "postgres_backup_schedule-not-cron", {"postgres_backup_schedule": "daily"}, "validate",
         ("postgres_backup_schedule 'daily' is not a cron schedule",)),
    Case("postgres_backup", "postgres_backup_retention-zero", {"postgres_backup_retention": 0}, "validate",
         ("postgres_backup_retention (0) must be at least 1",)),
    Case("postgres_backup", "postgres_backup_storage_size-not-a-quantity", {"postgres_backup_storage_size": "big"},
         "validate", ("postgres_backup_storage_size 'big' is not a Kubernetes storage quantity",)),
    Case("postgres_backup", "postgres_backup_s3-without-bucket",
         {"postgres_backup_s3": {"endpoint": "http://s3.example:8333", "credentials_secret": "s3"}}, "validate",
         ("postgres_backup_s3 needs endpoint", "bucket")),
    Case("postgres_backup", "postgres_backup_restore_from-s3-without-bucket", {"postgres_backup_restore_from": "s3"},
         "validate", ("postgres_backup_restore_from is s3, but postgres_backup_s3 names no bucket",)),
    Case("postgres_backup", "postgres_backup_backstage_selector-empty", {"postgres_backup_backstage_selector": {}},
         "validate", ("postgres_backup_backstage_selector ({}) must map at least one label key to its value",)),
    Case("postgres_backup", "postgres_backup_restore_name-not-a-backup", {"postgres_backup_restore_name": "yesterday"},
         "validate", ("postgres_backup_restore_name 'yesterday' is not a backup's name",)),
    *not_whole_name("postgres_backup", "postgres_backup_namespace", NAMESPACE, "postgres_backup_namespace ('",
                    "must be valid Kubernetes names"),
]

UNINSTALL = [
    spec_type("uninstall", "uninstall_purge", "maybe", "bool"),
    spec_type("uninstall", "uninstall_kept_secrets", {"ca": "backstage-pki-ca"}, "list"),
    spec_type("uninstall", "uninstall_wait_timeout", "soon", "int"),
    Case("uninstall", "uninstall_namespace-not-a-dns-label", {"uninstall_namespace": "Backstage_NS"}, "validate",
         ("uninstall_namespace ('Backstage_NS') must be a Kubernetes namespace name",)),
    Case("uninstall", "uninstall_instance-not-a-label-value", {"uninstall_instance": "back stage"}, "validate",
         ("uninstall_instance ('back stage') a label value",)),
    *not_whole_name("uninstall", "uninstall_namespace", NAMESPACE, "uninstall_namespace ('",
                    "must be a Kubernetes namespace name"),
]

CASES = MICROK8S + IMAGE_BUILD + IMAGE_IMPORT + PKI + POSTGRES + BACKSTAGE + CERT_ROTATION + POSTGRES_BACKUP + UNINSTALL


# ------------------------------------------------------------------------------------ the roles


@dataclass(frozen=True)
class Role:
    name: str
    # The variable that names the role's namespace (None: the role has no namespace).
    namespace_var: str | None
    # Validation tasks outside tasks/validate.yml.
    extra_validation_tasks: tuple[str, ...] = ()
    # Run the bad cases in check mode too (a role that installs software on this machine).
    check_mode: bool = False
    # The control case needs the cluster to get past validation.
    control_needs_cluster: bool = True
    # The control case runs to the end (in check mode); otherwise it only has to get past validation.
    control_completes: bool = False
    # Valid variables of the control case, beyond the base ones.
    control_vars: tuple[tuple[str, Any], ...] = ()

    def validation_tasks(self) -> set[str]:
        names = set(self.extra_validation_tasks)
        validate = REPO / "roles" / self.name / "tasks" / "validate.yml"
        if validate.exists():
            names |= {task["name"] for task in yaml.safe_load(validate.read_text())}
        return names


ROLES = {
    role.name: role
    for role in (
        # microk8s installs software on the machine that runs it: never outside check mode here.
        # Its control stops after validation on a machine without snap (this one).
        Role("microk8s", None, check_mode=True, control_needs_cluster=False),
        # Builds images on this machine: check mode; its control needs podman or docker (the test
        # images' host tools install podman).
        Role("image_build", None, check_mode=True, control_needs_cluster=False),
        # The control's image archive does not exist: the role stops when it reads it.
        Role("image_import", None, ("Check that each image names exactly one of archive and source",),
             control_needs_cluster=False,
             control_vars=(("image_import_images", [{"name": "localhost/argspec/app:1.0",
                                                     "archive": "/nonexistent/app.tar"}]),)),
        Role("pki", "pki_namespace", control_completes=True),
        Role("postgres", "postgres_namespace", ("List the cluster's StorageClasses", "Check that the StorageClass exists"),
             control_completes=True),
        Role("backstage", "backstage_namespace", control_completes=True),
        Role("cert_rotation", "cert_rotation_namespace", control_completes=True),
        Role("postgres_backup", "postgres_backup_namespace", control_completes=True),
        # Its checks are the first task of tasks/main.yml (a role of one file).
        Role("uninstall", "uninstall_namespace", ("Check the namespace and the instance",), control_completes=True),
    )
}


# ------------------------------------------------------------------------------------ the cluster


@dataclass
class Cluster:
    """The test cluster's environment, or why it is not there."""

    env: dict[str, str] = field(default_factory=dict)
    down_reason: str = ""

    @property
    def up(self) -> bool:
        return not self.down_reason

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLUSTER), "kubectl", *args], capture_output=True, text=True, timeout=120,
                              check=False)

    def namespaces(self) -> set[str]:
        out = self.kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
        assert out.returncode == 0, f"kubectl get namespaces failed: {out.stderr}"
        return set(out.stdout.split())


def find_cluster() -> Cluster:
    status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True, timeout=120, check=False)
    if status.returncode != 0:
        return Cluster(down_reason="the test cluster is not up (tests/cluster/cluster up)")
    out = subprocess.run([str(CLUSTER), "env"], capture_output=True, text=True, timeout=60, check=True).stdout
    env = dict(re.findall(r"^export (\w+)=(.*)$", out, re.M))
    return Cluster(env={k: v for k, v in env.items() if k != "PATH"})


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return find_cluster()


# ------------------------------------------------------------------------------------ one run per role


class TaskResult(NamedTuple):
    name: str  # without the role's prefix
    action: str
    result: dict[str, Any]


@dataclass
class HostResult:
    """What one case (one host) went through, task by task."""

    tasks: list[TaskResult] = field(default_factory=list)

    def failure(self) -> TaskResult | None:
        return next((t for t in self.tasks if t.result.get("failed")), None)

    def changed(self) -> list[str]:
        return [t.name for t in self.tasks if t.result.get("changed")]


@dataclass
class RoleRun:
    """What a role did with its cases."""

    returncode: int  # of the bad cases' run
    control_returncode: int
    hosts: dict[str, HostResult]
    namespaces: dict[str, str]  # case id -> its namespace
    leftover: set[str]  # namespaces of cases that existed after the run (deleted since)
    output: str


CONTROL = Case("", "valid-input", {}, "", ())


def case_host(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", case_id)


def base_vars(role: str, cluster: Cluster, workdir: Path) -> dict[str, Any]:
    """Valid variables every case of a role starts from: nothing here reaches outside the test."""
    env = cluster.env
    return {
        # Archives (none in check mode) in the test's own directory.
        "image_build": {"image_build_dir": str(workdir / "image-build")},
        "microk8s": {
            "microk8s_platform": "linux",
            "microk8s_kubeconfig": str(workdir / "microk8s.config"),
        },
        "image_import": {
            "image_import_platform": "linux",
            "image_import_become": False,
            "image_import_ctr_command": [
                "ctr", "--address", env.get("TESTCLUSTER_CONTAINERD_ADDRESS", str(workdir / "no-containerd.sock")),
                "-n", "k8s.io",
            ],
        },
        "pki": {},
        "postgres": {
            "postgres_storage_class": env.get("TESTCLUSTER_STORAGE_CLASS", "local-path"),
            "postgres_image": "localhost/backstage-k8s-argspec/never-pulled:1",
        },
        "backstage": {
            "backstage_image": "localhost/backstage-k8s-argspec/never-pulled-backend:1",
            "backstage_frontend_image": "localhost/backstage-k8s-argspec/never-pulled-frontend:1",
            "backstage_ingress_class_name": env.get("TESTCLUSTER_INGRESS_CLASS", "public"),
        },
        "cert_rotation": {
            "cert_rotation_image": "localhost/backstage-k8s-argspec/never-pulled-rotation:1",
        },
        "postgres_backup": {
            "postgres_backup_storage_class": env.get("TESTCLUSTER_STORAGE_CLASS", "local-path"),
            "postgres_backup_image": "localhost/backstage-k8s-argspec/never-pulled:1",
        },
        "uninstall": {},
    }[role]


def collections_path(workdir: Path) -> str:
    """This checkout as backstage.k8s first (never a copy installed elsewhere), then the
    virtualenv's collections."""
    root = workdir / "collections"
    (root / "ansible_collections" / "backstage").mkdir(parents=True)
    (root / "ansible_collections" / "backstage" / "k8s").symlink_to(REPO)
    return f"{root}{os.pathsep}{sysconfig.get_paths()['purelib']}"


def parse(stdout: str, stderr: str) -> dict[str, HostResult]:
    """Per host, the tasks it ran, from the report of the ansible.posix.json callback."""
    try:
        report = json.loads(stdout[stdout.index("{"):])
    except ValueError as error:
        raise AssertionError(f"ansible-playbook printed no JSON report ({error}):\n{stdout}\n{stderr}") from None
    hosts: dict[str, HostResult] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                name = task["task"]["name"].split(" : ", 1)[-1]
                hosts.setdefault(host, HostResult()).tasks.append(TaskResult(name, result.get("action", ""), result))
    return hosts


class PendingRun:
    """A role's cases running: one ansible-playbook for the bad cases, one (--check) for the
    valid input, side by side."""

    def __init__(self, role: Role, cluster: Cluster, workdir: Path) -> None:
        self.role, self.cluster, self.workdir = role, cluster, workdir
        workdir.mkdir()
        base = base_vars(role.name, cluster, workdir)
        hosts: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, str] = {}
        control_case = CONTROL._replace(vars=dict(role.control_vars))
        for index, case in enumerate([*(c for c in CASES if c.role == role.name), control_case]):
            host_vars = dict(base)
            namespace = f"argspec-{RUN}-{role.name.replace('_', '-')}-{index}"
            if role.namespace_var:
                host_vars[role.namespace_var] = namespace
            host_vars.update({name: value.replace(NAMESPACE, namespace) if isinstance(value, str) else value
                              for name, value in case.vars.items()})
            own = str(host_vars.get(role.namespace_var, "")).strip()
            if role.namespace_var and own not in SYSTEM_NAMESPACES:
                # The bare name: what an object would be named after YAML dropped the whitespace.
                self.namespaces[case.id] = own
            hosts[case_host(case.id)] = host_vars
        control = case_host(CONTROL.id)
        inventory = {
            "all": {
                "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                "children": {
                    "bad": {"hosts": {h: v for h, v in hosts.items() if h != control}},
                    "control": {"hosts": {control: hosts[control]}},
                },
            }
        }
        playbook = [{
            "name": f"Run {role.name}",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [{"name": "Run the role", "ansible.builtin.include_role": {"name": f"backstage.k8s.{role.name}"}}],
        }]
        (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
        (workdir / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
        env = {
            **os.environ,
            **cluster.env,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": collections_path(workdir),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_FORKS": str(FORKS),
        }
        if not cluster.up:
            # Never the user's own cluster: a case that slipped through must find no cluster at all.
            env["KUBECONFIG"] = env["K8S_AUTH_KUBECONFIG"] = str(workdir / "no-cluster.kubeconfig")
        command = [ANSIBLE_PLAYBOOK, "-i", str(workdir / "inventory.yml"), str(workdir / "play.yml")]
        # The control case runs with --check: the roles read ansible_check_mode, which only the
        # command line sets (not the check_mode keyword).
        self.bad = self._start([*command, "--limit", "bad", *(["--check"] if role.check_mode else [])], env)
        self.control = self._start([*command, "--limit", "control", "--check"], env)

    def _start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=self.workdir)

    def wait(self) -> RoleRun:
        bad_out = self.bad.communicate(timeout=600)
        control_out = self.control.communicate(timeout=600)
        leftover: set[str] = set()
        if self.cluster.up:
            leftover = self.cluster.namespaces() & set(self.namespaces.values())
            for namespace in sorted(leftover):  # only this run's own namespaces
                self.cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        return RoleRun(self.bad.returncode, self.control.returncode, {**parse(*bad_out), **parse(*control_out)},
                       self.namespaces, leftover, "".join(bad_out))


# Each ansible-playbook's forks: all roles run at once, on a machine that may have 2 CPUs.
FORKS = 4


class RoleRuns:
    """Every role the selected tests need, started together at the first test; each one's result
    is collected when a test first asks for it."""

    def __init__(self, roles: set[str], cluster: Cluster, workdir: Path) -> None:
        self.cluster = cluster
        if cluster.up:
            taken = {n for n in cluster.namespaces() if n.startswith(f"argspec-{RUN}-")}
            assert not taken, f"namespaces meant to be new exist already: {taken}"
        self.pending = {role: PendingRun(ROLES[role], cluster, workdir / role) for role in sorted(roles)}
        self.done: dict[str, RoleRun] = {}

    def __getitem__(self, role: str) -> RoleRun:
        if role not in self.done:
            self.done[role] = self.pending.pop(role).wait()
        return self.done[role]

    def close(self) -> None:
        for role in list(self.pending):
            self[role]


@pytest.fixture(scope="session")
def role_runs(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[RoleRuns]:
    roles = {item.callspec.params.get("case", Case(item.callspec.params.get("role", ""), "", {}, "", ())).role
             for item in request.session.items
             if item.path == Path(__file__) and hasattr(item, "callspec")}
    workdir = Path(tempfile.mkdtemp(prefix="bk8s-argspec-"))
    runs = RoleRuns(roles & set(ROLES), cluster, workdir)
    try:
        yield runs
    finally:
        runs.close()
        shutil.rmtree(workdir, ignore_errors=True)


def message(result: dict[str, Any]) -> str:
    """The failure message, with the messages of failed loop items, whitespace collapsed."""
    parts = [str(result.get("msg", ""))]
    parts += [str(item.get("msg", "")) for item in result.get("results", []) if item.get("failed")]
    return " ".join(" ".join(parts).split())


# ------------------------------------------------------------------------------------ the tests


def params(cases: list[Case], namespace: bool = False) -> list[Any]:
    """The cases as parameters; a case with a gap is a strict xfail (of the namespace test only
    when the gap lets the role create its namespace)."""
    return [
        pytest.param(case, id=f"{case.role}:{case.id}",
                     marks=[pytest.mark.xfail(reason=case.gap, strict=True)]
                     if case.gap and (case.gap_creates_namespace or not namespace) else [])
        for case in cases
    ]


def needs_cluster(case: Case) -> bool:
    """Cases that only the cluster can refuse, or that a gap lets reach the cluster."""
    return bool(case.gap) or "storage_class" in case.id


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_refused_by_validation_before_any_change(case: Case, cluster: Cluster,
                                                              role_runs: RoleRuns) -> None:
    if needs_cluster(case) and not cluster.up:
        pytest.skip(f"this case needs the cluster: {cluster.down_reason}")
    run = role_runs[case.role]
    assert run.returncode != 0, f"ansible-playbook succeeded:\n{run.output[-3000:]}"
    host = run.hosts[case_host(case.id)]
    failure = host.failure()
    assert failure, f"no task failed for {case.id}: {[t.name for t in host.tasks]}"
    text = message(failure.result)
    if case.stage == "spec":
        assert failure.action == SPEC_ACTION, f"failed at '{failure.name}', not the argument spec validation: {text}"
    else:
        assert failure.name in ROLES[case.role].validation_tasks(), \
            f"failed at '{failure.name}', not a validation task: {text}"
    assert "Traceback" not in text and "MODULE FAILURE" not in text, f"not a clear message: {text}"
    missing = [w for w in case.words if w not in text]
    assert not missing, f"the message lacks {missing}: {text}"
    assert not host.changed(), f"tasks reported a change before the failure: {host.changed()}"


@pytest.mark.parametrize("case", params([c for c in CASES if ROLES[c.role].namespace_var
                                         and c.vars.get(ROLES[c.role].namespace_var) not in SYSTEM_NAMESPACES],
                                        namespace=True))
def test_bad_input_leaves_its_namespace_uncreated(case: Case, cluster: Cluster, role_runs: RoleRuns) -> None:
    if not cluster.up:
        pytest.skip(f"no namespace to look for: {cluster.down_reason}")
    run = role_runs[case.role]
    namespace = run.namespaces[case.id]
    assert namespace not in run.leftover, f"the run created the namespace {namespace}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_valid_input_gets_past_validation(role: str, cluster: Cluster, role_runs: RoleRuns) -> None:
    if ROLES[role].control_needs_cluster and not cluster.up:
        pytest.skip(f"the control case of {role} reads the cluster: {cluster.down_reason}")
    run = role_runs[role]
    host = run.hosts[case_host(CONTROL.id)]
    spec = [t for t in host.tasks if t.action == SPEC_ACTION]
    assert spec and not spec[0].result.get("failed"), f"the argument spec refused valid input: {spec}"
    validation = ROLES[role].validation_tasks()
    refused = [(t.name, message(t.result)) for t in host.tasks if t.name in validation and t.result.get("failed")]
    assert not refused, f"validation refused valid input: {refused}"
    last_check = max(i for i, t in enumerate(host.tasks) if t.action == SPEC_ACTION or t.name in validation)
    assert host.tasks[last_check + 1:], f"the role stopped at its validation: {[t.name for t in host.tasks]}"
    if ROLES[role].control_completes:
        failure = host.failure()
        assert run.control_returncode == 0 and not failure, f"check mode failed: {failure}"
    if ROLES[role].namespace_var:
        namespace = run.namespaces[CONTROL.id]
        assert namespace not in run.leftover, f"check mode created the namespace {namespace}"


# ------------------------------------------------------------------------------------ the whole play


# site.yml, for real (not in check mode), with one bad value each: its preflight refuses it before
# any role changes anything, so the case's namespace (and every Secret in it) is never created.
# Bad values for the last roles, and roles disagreeing on what they share. One ansible-playbook per
# case (site.yml's play targets localhost), its variables in the inventory's group_vars.
SITE_CASES = [
    Case("site", "postgres_backup_retention-zero-last-role", {"postgres_backup_retention": 0}, "validate",
         ("postgres_backup_retention (0) must be at least 1",)),
    spec_type("site", "postgres_backup_suspend", "maybe", "bool"),
    Case("site", "cert_rotation_schedule-not-cron", {"cert_rotation_schedule": "every day"}, "validate",
         ("cert_rotation_schedule 'every day' is not a cron schedule",)),
    Case("site", "cert_rotation_image-empty", {"cert_rotation_image": ""}, "validate",
         ("Set cert_rotation_image",)),
    spec_choice("site", "backstage_k8s_database_mode", "readonly"),
    Case("site", "least-privilege-as-the-superuser", {"backstage_k8s_database_mode": "least_privilege"}, "validate",
         ("postgres_database_mode least_privilege needs a database user other than postgres",
          "set backstage_k8s_database_user")),
    Case("site", "pki_database_user-alone", {"pki_database_user": "backstage"}, "validate",
         ("The roles disagree on the database user", '"pki_database_user": "backstage"',
          '"postgres_database_user": "postgres"', "Set backstage_k8s_database_user once")),
    Case("site", "backstage_instance-alone", {"backstage_instance": "portal"}, "validate",
         ("The roles disagree on the instance", '"postgres_common_labels": "backstage"', "backstage_k8s_instance")),
    Case("site", "backstage_database_pod_selector-other-instance",
         {"backstage_database_pod_selector": {"app.kubernetes.io/name": "postgres",
                                              "app.kubernetes.io/instance": "other"}}, "validate",
         ("The roles disagree on the instance", '"backstage_database_pod_selector": "other"')),
    Case("site", "postgres_backup_backstage_selector-other-instance",
         {"postgres_backup_backstage_selector": {"app.kubernetes.io/component": "backend",
                                                 "app.kubernetes.io/instance": "other"}}, "validate",
         ("The roles disagree on the instance", '"postgres_backup_backstage_selector": "other"')),
    Case("site", "postgres_tls_secret_name-alone", {"postgres_tls_secret_name": "my-server-tls"}, "validate",
         ("The roles disagree on the PostgreSQL server certificate's Secret", "backstage_k8s_postgres_tls_secret_name")),
    Case("site", "postgres_backup_namespace-alone", {"postgres_backup_namespace": "elsewhere"}, "validate",
         ("The roles disagree on the namespace", '"postgres_backup_namespace": "elsewhere"')),
    # Split backends: every role names each backend's Deployment, certificate and database role alike.
    Case("site", "backstage_backends-alone",
         {"backstage_backends": [{"name": "main", "plugins": ["catalog", "auth"]},
                                 {"name": "gateway", "plugins": ["gateway"]}]}, "validate",
         ("The roles disagree on the backends", "backstage_k8s_backends", '"pki_backstage_backends": []')),
    Case("site", "pki_database_mode-alone", {"pki_database_mode": "least_privilege"}, "validate",
         ("The roles disagree on the database mode", "backstage_k8s_database_mode",
          '"postgres_database_mode": "superuser"')),
    Case("site", "postgres_storage_class-missing", {"postgres_storage_class": "no-such-storage-class"}, "validate",
         ("StorageClass 'no-such-storage-class' does not exist in the cluster",)),
    # With --tags only the selected roles' checks run, and the rules between the roles always do.
    Case("site", "backstage_replicas-zero-tags-backstage", {"backstage_replicas": 0}, "validate",
         ("keep backstage_replicas and backstage_frontend_replicas at 1 or more",), tags="backstage"),
    Case("site", "pki_database_user-alone-tags-backstage", {"pki_database_user": "backstage"}, "validate",
         ("The roles disagree on the database user",), tags="backstage"),
]
SITE_CONTROL = Case("site", "valid-input", {}, "", ())


def site_validation_tasks() -> set[str]:
    """Every check of site.yml before its first change: each role's validate.yml, the StorageClass
    check and the preflight's own."""
    names = {name for role in ROLES.values() for name in role.validation_tasks()}
    for tasks in (REPO / "roles" / "preflight" / "tasks" / "main.yml",
                  REPO / "roles" / "postgres" / "tasks" / "validate_cluster.yml"):
        names |= {task["name"] for task in yaml.safe_load(tasks.read_text())}
    return names


class SiteRun(NamedTuple):
    returncode: int
    host: HostResult
    namespace: str
    created: bool  # the namespace existed after the run (deleted since)
    output: str


@pytest.fixture(scope="session")
def site_runs(cluster: Cluster) -> Iterator[dict[str, SiteRun]]:
    """Every case's site.yml run, started together, the valid one in check mode."""
    if not cluster.up:
        pytest.skip(f"site.yml reads the cluster: {cluster.down_reason}")
    workdir = Path(tempfile.mkdtemp(prefix="bk8s-argspec-site-"))
    collections = collections_path(workdir)
    env = {**os.environ, **cluster.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    started = {}
    for index, case in enumerate([*SITE_CASES, SITE_CONTROL]):
        namespace = f"argspec-{RUN}-site-{index}"
        inventory = workdir / case_host(case.id)
        (inventory / "group_vars").mkdir(parents=True)
        (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
        group_vars = {
            # An existing cluster: site.yml never installs microk8s here.
            "backstage_k8s_kubeconfig": cluster.env["KUBECONFIG"],
            "backstage_k8s_namespace": namespace,
            **base_vars("postgres", cluster, workdir), **base_vars("backstage", cluster, workdir),
            **base_vars("cert_rotation", cluster, workdir), **base_vars("postgres_backup", cluster, workdir),
            **case.vars,
        }
        (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
        command = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(REPO / "site.yml"),
                   *(["--check"] if case is SITE_CONTROL else []), *(["--tags", case.tags] if case.tags else [])]
        started[case.id] = (namespace, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                        text=True, env=env, cwd=workdir))
    runs = {}
    try:
        for case_id, (namespace, process) in started.items():
            out, err = process.communicate(timeout=900)
            runs[case_id] = SiteRun(process.returncode, parse(out, err).get("localhost", HostResult()), namespace,
                                    False, out + err)
        existing = cluster.namespaces()
        for case_id, run in runs.items():
            if run.namespace in existing:
                runs[case_id] = run._replace(created=True)
                cluster.kubectl("delete", "namespace", run.namespace, "--wait=false")
        yield runs
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("site_case", [pytest.param(c, id=f"site:{c.id}") for c in SITE_CASES])
def test_site_refuses_bad_input_before_any_role_changes_anything(site_case: Case,
                                                                 site_runs: dict[str, SiteRun]) -> None:
    run = site_runs[site_case.id]
    assert run.returncode != 0, f"site.yml succeeded:\n{run.output[-3000:]}"
    failure = run.host.failure()
    assert failure, f"no task failed: {[t.name for t in run.host.tasks]}"
    text = message(failure.result)
    if site_case.stage == "spec":
        assert failure.action == SPEC_ACTION, f"failed at '{failure.name}', not an argument spec validation: {text}"
    else:
        assert failure.name in site_validation_tasks(), f"failed at '{failure.name}', not a check: {text}"
    missing = [w for w in site_case.words if w not in text]
    assert not missing, f"the message lacks {missing}: {text}"
    assert not run.host.changed(), f"tasks reported a change before the failure: {run.host.changed()}"
    assert not run.created, f"site.yml created the namespace {run.namespace}"


def test_site_with_valid_input_runs_through_in_check_mode(site_runs: dict[str, SiteRun]) -> None:
    run = site_runs[SITE_CONTROL.id]
    assert run.returncode == 0 and not run.host.failure(), run.output[-3000:]
    assert any(t.name == "Check that the roles agree on what they share" for t in run.host.tasks)
    assert not run.created, f"check mode created the namespace {run.namespace}"
