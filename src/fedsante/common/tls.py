"""TLS for the desk: a local certificate authority and a server certificate (``cryptography``), and the
client-side context that pins it.

For a deployment behind a reverse proxy with a public certificate, nodes need no CA file (the system's
trust store applies); for loopback, a demo or a regional network without a public CA, ``fedsante desk tls
init`` makes a small CA, the desk serves with the certificate it signs, and every node pins the CA
(``desk_ca`` in its config): a node then talks only to a desk that holds that CA's certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedsante.common.errors import ConfigError

VALIDITY_DAYS = 825  # the longest server-certificate lifetime browsers accept


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_local_ca(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                  organisation: str = "fedsante desk") -> TlsFiles:
    """Write ``ca.pem`` (the CA nodes pin), ``desk.pem`` and ``desk-key.pem`` (mode 0600) under ``folder``.

    The CA's private key is not kept: it signs the desk's certificate once, so nothing else can be
    signed with it later; run again (new CA, new pins) to renew.
    """
    files = TlsFiles(folder / "ca.pem", folder / "desk.pem", folder / "desk-key.pem")
    if files.server_key.exists():
        raise ConfigError(f"{files.server_key} exists already; remove the folder {folder} to make a new CA "
                          "(every node must then pin the new ca.pem).")
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
              .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    fd = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return files


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def pinned_context(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts only ``ca_file`` (the desk's CA or its own certificate)."""
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"Cannot read the desk's CA certificate {ca_file}: {exc}. Copy the desk's ca.pem "
                          "('fedsante desk tls init') and set 'desk_ca' to its path.") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (where plain HTTP cannot be intercepted on a network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
