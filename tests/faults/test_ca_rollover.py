"""The CA is renewed before it expires, with an overlap, by the rotation job alone and with no
failed request through the Ingress: a deployment whose CA has 10 days left and a renewal window of
20 days (pki_ca_renew_days_left) is rolled over by three rotation runs (a new CA trusted beside
the old one, the leaves re-issued by the new CA, the old CA dropped). Afterwards the leaves come
from the new CA, every ca.crt and CRL is the new CA's alone, PostgreSQL refuses a client
certificate of the old CA, and neither a rotation nor site.yml has anything left to do.

A deployment of its own (namespace backstage-carollover): its certificate settings differ from
the other fault tests'."""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

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


def rollover_state(deployment: Deployment, old_ca: x509.Certificate) -> dict[str, Any]:
    """Where the rollover stands, from the Secrets: whether the CA Secret keeps a previous CA, the
    CAs each leaf's ca.crt holds and the CA that issued each leaf ("old", "new"), and whose CRLs
    the server's ca.crl holds."""
    ca_data = deployment.secret(CA_SECRET)
    signer = pem_certificates(ca_data["tls.crt"])[0]
    names = {old_ca.subject.rfc4514_string() + old_ca.fingerprint(hashes.SHA256()).hex(): "old",
             signer.subject.rfc4514_string() + signer.fingerprint(hashes.SHA256()).hex(): "new"}

    def name(certificate: x509.Certificate) -> str:
        return names.get(certificate.subject.rfc4514_string() + certificate.fingerprint(hashes.SHA256()).hex(), "?")

    def issuer(certificate: x509.Certificate) -> str:
        for ca, label in ((signer, "new"), (old_ca, "old")):
            try:
                certificate.verify_directly_issued_by(ca)
                return label
            except (ValueError, TypeError, InvalidSignature):
                continue
        return "?"

    state: dict[str, Any] = {"previous": "previous.key" in ca_data, "signer": name(signer),
                             "ca_bundle": [name(c) for c in pem_certificates(ca_data["ca.crt"])]}
    for secret in (SERVER_SECRET, CLIENT_SECRET):
        data = deployment.secret(secret)
        state[secret] = {"ca.crt": [name(c) for c in pem_certificates(data["ca.crt"])],
                         "issuer": issuer(pem_certificates(data["tls.crt"])[0])}
    crls = [x509.load_pem_x509_crl(b.encode()) for b in
            re.findall(r"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", deployment.secret(SERVER_SECRET)["ca.crl"],
                       re.DOTALL)]
    state["crl_signers"] = sorted(label for crl in crls for ca, label in ((signer, "new"), (old_ca, "old"))
                                  if crl.is_signature_valid(ca.public_key()))
    return state


def ca_days_left(deployment: Deployment) -> float:
    """Days the CA in the namespace has left (infinity when there is none)."""
    if not deployment.get("secrets", "--field-selector", f"metadata.name={CA_SECRET}")["items"]:
        return float("inf")
    ca = pem_certificates(deployment.secret(CA_SECRET)["tls.crt"])[0]
    return (ca.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


def expected_state(previous: bool, bundle: list[str], issuer: str, crl_signers: list[str]) -> dict[str, Any]:
    leaf = {"ca.crt": bundle, "issuer": issuer}
    return {"previous": previous, "signer": "new", "ca_bundle": bundle, SERVER_SECRET: leaf, CLIENT_SECRET: leaf,
            "crl_signers": crl_signers}


# After each rotation run: the new CA signs, both are trusted and the leaves still come from the
# old one; then from the new one; then the old CA is gone.
EXPECTED = {
    "start": expected_state(True, ["new", "old"], "old", ["new", "old"]),
    "reissue": expected_state(True, ["new", "old"], "new", ["new", "old"]),
    "drop": expected_state(False, ["new"], "new", ["new"]),
}


@pytest.fixture(scope="module")
def rollover_deployment() -> Iterator[Deployment]:
    """BACKSTAGE_K8S_FAULTS_REUSE=1 keeps the namespace (as the other fault tests do), and a
    deployment found there that has not rolled over yet."""
    reuse = os.environ.get("BACKSTAGE_K8S_FAULTS_REUSE") == "1"
    deployment = Deployment(Cluster(), namespace="backstage-carollover", host="backstage-carollover.localhost")
    if not reuse:
        deployment.delete_namespace()
    if not (reuse and ca_days_left(deployment) < FIRST["pki_ca_ttl_days"] + 1):
        deployment.deploy("ca-rollover-deploy", **FIRST)
    deployment.wait_until_answering(300)
    yield deployment
    if not reuse:
        deployment.delete_namespace()


def test_the_ca_rolls_over_before_it_expires_with_no_failed_request(rollover_deployment: Deployment) -> None:
    deployment = rollover_deployment
    old_ca = pem_certificates(deployment.secret(CA_SECRET)["tls.crt"])[0]
    old_client = deployment.secret(CLIENT_SECRET)
    assert pem_certificates(old_client["ca.crt"]) == [old_ca]
    # The rotation CronJob gets the new window; this run itself holds the rollover.
    recap = deployment.deploy("ca-rollover-settings", **ROLLOVER, pki_ca_rollover_step=False)
    assert "CA rollover: " not in recap.site_output
    assert pem_certificates(deployment.secret(CA_SECRET)["tls.crt"]) == [old_ca]

    probe = availability.Probe(deployment.url, deployment.host).start()
    states, timings = {}, {}
    try:
        for phase in PHASES:
            started = time.monotonic()
            deployment.rotate(f"ca-rollover-{phase}")
            timings[phase] = round(time.monotonic() - started, 1)
            states[phase] = rollover_state(deployment, old_ca)
            log(f"rotation ({phase}) took {timings[phase]} s: {states[phase]}")
        result = deployment.rotate("ca-rollover-after")
    finally:
        availability_result = probe.stop()
    write_artifact("ca-rollover.json", {"availability": availability_result, "states": states,
                                        "rotation_s": timings})
    assert states == EXPECTED
    assert availability_result["requests"] > 100, availability_result
    assert availability_result["failed"] == 0, availability_result
    # A fourth run finds nothing to do.
    assert rollover_state(deployment, old_ca) == EXPECTED["drop"]
    assert "nothing was due" in result.stdout

    # The new CA alone, in the CA Secret and in every bundle; the old key is gone.
    ca_data = deployment.secret(CA_SECRET)
    assert not {"previous.crt", "previous.key"} & set(ca_data)
    new_ca = pem_certificates(ca_data["tls.crt"])[0]
    assert new_ca != old_ca and new_ca.public_key() != old_ca.public_key()
    serials = assert_leaf_secrets_consistent(deployment)
    assert_workloads_use_the_secrets(deployment, serials)
    assert deployment.answers()

    # A client certificate of the old CA (still within its lifetime) is refused by PostgreSQL;
    # the same connection with the current one works.
    with pytest.raises(Exception) as refused:
        postgres_query(deployment.kubectl, "SELECT 1", client={**old_client, "ca.crt": ca_data["ca.crt"]})
    log(f"old CA's client certificate refused: {refused.value!r}"[:300])
    assert postgres_query(deployment.kubectl, "SELECT 1")["rows"] == [["1"]]

    # Nothing left to do: site.yml with the same settings changes nothing.
    recap = deployment.deploy("ca-rollover-rerun", **ROLLOVER)
    assert recap.site_changes == [], recap.site_changes
