"""Throwaway certificate authorities and serving certificates (one implementation for every user).

The lab's API server (127.0.0.1), the lab's fake ingress certificate and the kit's per-run ingress host
(`--ingress-tls`) all need the same thing: a CA that lives for one run and a server certificate it signs,
as PEM. Keys are EC P-256; nothing here touches the disk.

>>> bundle = serving_certificate("netconform test CA", "echo.test", dns=["echo.test"])
>>> bundle.cert_pem.count(b"BEGIN CERTIFICATE"), bundle.key_pem.startswith(b"-----BEGIN PRIVATE KEY")
(2, True)
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertBundle:
    ca_pem: bytes
    cert_pem: bytes  # the server's certificate, then the CA's (a chain)
    key_pem: bytes  # the server's key, PKCS#8, unencrypted


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn[:64]), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def serving_certificate(
    ca_cn: str,
    cn: str,
    *,
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
    org: str = "netconform",
    validity: datetime.timedelta = datetime.timedelta(days=1),
) -> CertBundle:
    """A new CA named `ca_cn` and a server certificate for `cn` with the given SANs, signed by it."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(ca_cn, org)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CertBundle(ca_pem, cert.public_bytes(serialization.Encoding.PEM) + ca_pem, key_pem)
