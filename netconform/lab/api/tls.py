"""A throwaway CA and serving certificate for the lab API on 127.0.0.1.

kubectl does not send bearer tokens over plain http, so the API speaks TLS: a CA made for this lab run
(its certificate goes into the kubeconfig as `certificate-authority-data`) signs a server certificate
for 127.0.0.1/localhost. Keys never leave the lab's state directory (mode 0600).
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from netconform.pki import serving_certificate

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServingCert:
    ca_pem: bytes
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def make_serving_cert(directory: Path, lab: str) -> ServingCert:
    """A CA for this lab and a certificate for 127.0.0.1/localhost, written to `directory` (key 0600)."""
    bundle = serving_certificate(
        f"netconform-lab-{lab}-ca",
        "netconform-lab-apiserver",
        dns=["localhost"],
        ips=["127.0.0.1"],
        org="netconform lab",
        validity=VALIDITY,
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(bundle.key_pem)
    cert_path.write_bytes(bundle.cert_pem)
    (directory / "ca.crt").write_bytes(bundle.ca_pem)
    return ServingCert(bundle.ca_pem, cert_path, key_path)
