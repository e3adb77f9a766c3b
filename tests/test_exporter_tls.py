"""The endpoint over TLS, with certificates made here: HTTPS works, plain HTTP is refused,
client certificates are enforced with --tls-client-ca, a silent client blocks no one."""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import urllib.request
from argparse import Namespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from neurontui.exporter import ExporterError, start_exporter
from neurontui.store import Store
from tests.test_exporter import free_port


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer_key, issuer_name: x509.Name | None, ca: bool = False, server: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer_name or _name(subject)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path, key, cert) -> tuple[str, str]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    where = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _issue("neurontui test CA", None, None, ca=True)
    server_key, server_cert = _issue("127.0.0.1", ca_key, ca_cert.subject, server=True)
    client_key, client_cert = _issue("prometheus", ca_key, ca_cert.subject)
    ca_path, _ = _write(where / "ca", ca_key, ca_cert)
    return {"ca": ca_path, "server": _write(where / "server", server_key, server_cert),
            "client": _write(where / "client", client_key, client_cert)}


def _args(pki, client_ca: bool = False) -> Namespace:
    cert, key = pki["server"]
    return Namespace(prometheus_addr="127.0.0.1", prometheus_port=free_port(), tls_cert=cert, tls_key=key,
                     tls_client_ca=pki["ca"] if client_ca else None, aws_labels=False)


def _https_get(url: str, pki, client: bool = False) -> str:
    context = ssl.create_default_context(cafile=pki["ca"])
    if client:
        context.load_cert_chain(*pki["client"])
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return response.read().decode()


def test_https_scrape_succeeds_and_plain_http_is_refused(pki):
    exporter = start_exporter(Store(), _args(pki))
    try:
        assert exporter.url.startswith("https://127.0.0.1:")
        assert "neurontui_up 1.0" in _https_get(exporter.url, pki)
        plain = exporter.url.replace("https://", "http://")
        with pytest.raises(OSError):  # reset, closed, or a TLS alert that is no HTTP status line
            urllib.request.urlopen(plain, timeout=10).read()
        assert "neurontui_up" in _https_get(exporter.url, pki), "a refused plain scrape must not break the endpoint"
    finally:
        exporter.close()


def test_client_certificate_required_with_client_ca(pki):
    exporter = start_exporter(Store(), _args(pki, client_ca=True))
    try:
        with pytest.raises(OSError):
            _https_get(exporter.url, pki, client=False)
        assert "neurontui_up" in _https_get(exporter.url, pki, client=True)
    finally:
        exporter.close()


def test_silent_client_does_not_block_other_scrapes(pki):
    exporter = start_exporter(Store(), _args(pki))
    try:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10):
            # connected, never starts a handshake: the next scrape must still be served now
            assert "neurontui_up" in _https_get(exporter.url, pki)
    finally:
        exporter.close()


def test_unreadable_certificate_is_one_line(pki, tmp_path):
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate\n")
    args = _args(pki)
    args.tls_cert = str(bad)
    with pytest.raises(ExporterError) as error:
        start_exporter(Store(), args)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    args.tls_cert = str(tmp_path / "missing.crt")
    with pytest.raises(ExporterError) as error:
        start_exporter(Store(), args)
    assert "missing.crt" in str(error.value)
