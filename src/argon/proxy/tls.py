"""The proxy's TLS: a CA and a ``*.<domain>`` server certificate made at first start (or
the user's own), the server ``SSLContext`` and the channel-binding hash.

Generated keys are ECDSA P-256 (fast handshakes) and written 0600; the CA certificate is
what users install or pass as ``sslrootcert`` for ``verify-full``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from argon.errors import InvalidInput

logger = logging.getLogger(__name__)

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
ALPN_POSTGRESQL = "postgresql"
VALID_DAYS = 3650


@dataclass(frozen=True)
class TlsConfig:
    """Certificate files plus the plaintext policy of the Postgres listeners."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    # sslmode=disable is accepted from loopback peers only, and only when this is True.
    allow_plaintext_loopback: bool = True
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def ensure(cls, directory: Path, domain: str | None, *,
               allow_plaintext_loopback: bool = True) -> TlsConfig:
        """Load the certificates in ``directory``, generating them on first use."""
        cert, key = directory / SERVER_CERT, directory / SERVER_KEY
        if not (cert.exists() and key.exists()):
            generate(directory, domain)
        ca = directory / CA_CERT
        return cls(cert, key, ca if ca.exists() else None, allow_plaintext_loopback)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, *,
             allow_plaintext_loopback: bool = True) -> TlsConfig:
        """Use a certificate and key the user gave (checked now, not at first connect)."""
        config = cls(Path(cert_file), Path(key_file), None, allow_plaintext_loopback)
        config.server_context()
        return config

    def server_context(self) -> ssl.SSLContext:
        ctx = self._cache.get("ctx")
        if isinstance(ctx, ssl.SSLContext):
            return ctx
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:
            raise InvalidInput(f"cannot load the TLS certificate {self.cert_file} with key "
                               f"{self.key_file}: {e}; give a PEM certificate and its key"
                               ) from None
        ctx.set_alpn_protocols([ALPN_POSTGRESQL])
        self._cache["ctx"] = ctx
        return ctx

    def channel_binding(self) -> bytes:
        """``tls-server-end-point`` data (RFC 5929): the certificate's hash, with the hash
        of its signature algorithm, SHA-256 in place of MD5/SHA-1."""
        cached = self._cache.get("cb")
        if isinstance(cached, bytes):
            return cached
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        algo = cert.signature_hash_algorithm
        name = algo.name if algo is not None and algo.name not in ("md5", "sha1") else "sha256"
        digest = hashlib.new(name, cert.public_bytes(serialization.Encoding.DER)).digest()
        self._cache["cb"] = digest
        return digest


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate(directory: Path, domain: str | None) -> None:
    """Make (or reuse) a CA in ``directory`` and sign a server certificate valid for
    ``*.<domain>``, ``<domain>``, ``localhost``, ``*.localhost`` and ``127.0.0.1``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise InvalidInput(f"{ca_key_path} is not an EC key; remove it to regenerate")
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Argon local CA")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, _key_pem(ca_key))
        ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName("*.localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if domain:
        names = [x509.DNSName(f"*.{domain}"), x509.DNSName(domain), *names]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}" if domain
                                            else "localhost")])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / SERVER_KEY, _key_pem(key))
    (directory / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("generated TLS certificate for %s in %s", domain or "localhost", directory)
