"""The CA is renewed before it expires, with an overlap, by the rotation job alone and with no
failed request through the Ingress: a deployment whose CA has 10 days left and a renewal window of
20 days (pki_ca_renew_days_left) is rolled over by three rotation runs (a new CA trusted beside
the old one, the leaves re-issued by the new CA, the old CA dropped). Afterwards the leaves come
from the new CA, every ca.crt and CRL is the new CA's alone, PostgreSQL refuses a client
certificate of the old CA, and neither a rotation nor site.yml has anything left to do.

A deployment of its own (namespace backstage-carollover): its certificate settings differ from
the other fault tests'."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from conftest import (
    CA_SECRET, CLIENT_SECRET, SERVER_SECRET, Deployment, assert_leaf_secrets_consistent,
    assert_workloads_use_the_secrets, log, write_artifact,
)
from testcluster import Cluster, postgres_query

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import availability  # noqa: E402  (bench/)

# Leaves of 5 days renewed at 3 (or 2 days before they expire) keep every lifetime rule
# (leaf < renewal window < CA).
LEAVES = {"pki_leaf_ttl_days": 5, "pki_leaf_renew_after_days": 3, "cert_rotation_min_days_left": 2}
# A CA of 10 days, not due with a window of 6 days...
FIRST = {**LEAVES, "pki_ca_ttl_days": 10, "pki_ca_renew_days_left": 6}
# ...and due with a window of 20 (new CAs live 30 days, so the new one is not due).
ROLLOVER = {**LEAVES, "pki_ca_ttl_days": 30, "pki_ca_renew_days_left": 20}
PHASES = ["start", "reissue", "drop"]


def pem_certificates(data: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data.encode())


def crl_issuers(data: str) -> list[x509.Name]:
    blocks = re.findall(r"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", data, re.DOTALL)
    return [x509.load_pem_x509_crl(block.encode()).issuer for block in blocks]


@pytest.fixture(scope="module")
def rollover_deployment() -> Deployment:
    deployment = Deployment(Cluster(), namespace="backstage-carollover", host="backstage-carollover.localhost")
    deployment.delete_namespace()
    deployment.deploy("ca-rollover-deploy", **FIRST)
    deployment.wait_until_answering(300)
    yield deployment
    deployment.delete_namespace()


def test_the_ca_rolls_over_before_it_expires_with_no_failed_request(rollover_deployment: Deployment) -> None:
    deployment = rollover_deployment
    old_ca = pem_certificates(deployment.secret(CA_SECRET)["tls.crt"])[0]
    old_client = deployment.secret(CLIENT_SECRET)
    # The rotation CronJob gets the new window; this run itself holds the rollover.
    recap = deployment.deploy("ca-rollover-settings", **ROLLOVER, pki_ca_rollover_step=False)
    assert "CA rollover" not in recap.site_output
    assert deployment.secret(CA_SECRET)["tls.crt"] == old_client["ca.crt"]

    probe = availability.Probe(deployment.url, deployment.host).start()
    reports, timings = [], {}
    try:
        for phase in PHASES:
            started = time.monotonic()
            result = deployment.rotate(f"ca-rollover-{phase}")
            timings[phase] = round(time.monotonic() - started, 1)
            reports.append(re.findall(r"CA rollover: (\w+)", result.stdout))
            log(f"rotation ({phase}) took {timings[phase]} s: {reports[-1]}")
        result = deployment.rotate("ca-rollover-after")
    finally:
        availability_result = probe.stop()
    write_artifact("ca-rollover.json", {"availability": availability_result, "phases": reports,
                                        "rotation_s": timings})
    assert [phase[:1] for phase in reports] == [[p] for p in PHASES], reports
    assert availability_result["requests"] > 100, availability_result
    assert availability_result["failed"] == 0, availability_result
    assert "CA rollover" not in result.stdout and "nothing was due" in result.stdout

    # The new CA alone, in the CA Secret and in every bundle; the old key is gone.
    ca_data = deployment.secret(CA_SECRET)
    assert not {"previous.crt", "previous.key"} & set(ca_data)
    new_ca = pem_certificates(ca_data["tls.crt"])[0]
    assert new_ca != old_ca and new_ca.public_key() != old_ca.public_key()
    assert pem_certificates(ca_data["ca.crt"]) == [new_ca]
    for name in (SERVER_SECRET, CLIENT_SECRET):
        assert pem_certificates(deployment.secret(name)["ca.crt"]) == [new_ca], name
    assert crl_issuers(deployment.secret(SERVER_SECRET)["ca.crl"]) == [new_ca.subject]
    serials = assert_leaf_secrets_consistent(deployment)
    assert_workloads_use_the_secrets(deployment, serials)
    assert deployment.answers()

    # A client certificate of the old CA (still within its lifetime) is refused by PostgreSQL;
    # the same connection with the current one works.
    with pytest.raises(Exception) as refused:
        postgres_query(deployment.kubectl, "SELECT 1",
                       client={**old_client, "ca.crt": ca_data["ca.crt"]})
    log(f"old CA's client certificate refused: {refused.value!r}"[:300])
    assert postgres_query(deployment.kubectl, "SELECT 1")["rows"] == [["1"]]

    # Nothing left to do: site.yml with the same settings changes nothing.
    recap = deployment.deploy("ca-rollover-rerun", **ROLLOVER)
    assert recap.site_changes == [], recap.site_changes
