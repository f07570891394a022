"""The Secrets the pki role keeps: what each certificate says, and who signed it."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import CA_SECRET, CLIENT_SECRET, DATABASE_USER, NAMESPACE, SERVER_SECRET, SERVICE, kubectl_json, secret_data


def _certificate(secret: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(secret_data(secret)["tls.crt"])


def test_secrets_are_tls_secrets_with_the_ca() -> None:
    ca = secret_data(CA_SECRET)["tls.crt"]
    for name in (SERVER_SECRET, CLIENT_SECRET):
        secret = kubectl_json("-n", NAMESPACE, "get", "secret", name)
        assert secret["type"] == "kubernetes.io/tls"
        # The server certificate's Secret also carries the CA's CRL, which PostgreSQL loads.
        assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"} | ({"ca.crl"} if name == SERVER_SECRET else set())
        assert secret_data(name)["ca.crt"].strip() == ca.strip()


def test_server_certificate_names_the_service_in_every_form_and_the_extra_sans() -> None:
    certificate = _certificate(SERVER_SECRET)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        SERVICE,
        f"{SERVICE}.{NAMESPACE}",
        f"{SERVICE}.{NAMESPACE}.svc",
        f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
        "db.backstage.internal",
    }
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.10")]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificate_cn_is_exactly_the_database_user() -> None:
    certificate = _certificate(CLIENT_SECRET)
    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [DATABASE_USER]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaves_are_signed_by_the_ca_and_live_45_days() -> None:
    ca = _certificate(CA_SECRET)
    for name in (SERVER_SECRET, CLIENT_SECRET):
        certificate = _certificate(name)
        certificate.verify_directly_issued_by(ca)
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert lifetime == datetime.timedelta(days=45)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
