"""The proxy's TLS: a CA made at first start (or the user's own certificate), the server
``SSLContext`` with its SNI callback, exact-name leaf certificates minted on demand, and
the channel-binding hash of the certificate each connection was shown.

Generated keys are ECDSA P-256 (fast handshakes) and written 0600; the CA certificate is
what users install or pass as ``sslrootcert`` for ``verify-full``.

Why exact names: OpenSSL (libpq ``verify-full``), Node and Chromium refuse a wildcard
directly under a one-label name (``*.localhost``), and a wildcard never covers two labels.
So for ``ep-x.<domain>``, ``ep-x-pooler.<domain>`` and ``api.<domain>`` the SNI callback
switches the handshake to a context whose certificate names exactly that host.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from argon.errors import InvalidInput
from argon.proxy.routing import endpoint_from_host

logger = logging.getLogger(__name__)

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
# One key for every minted leaf: signing a certificate is cheap, making a key less so.
NAMES_KEY = "names.key"
ALPN_POSTGRESQL = "postgresql"
ALPN_HTTP1 = "http/1.1"
VALID_DAYS = 3650
# Minted leaves live in memory and are re-made at each start; 397 days keeps them under
# the limits browsers and Apple platforms put on server certificates.
LEAF_VALID_DAYS = 397
LEAF_CACHE_SIZE = 512
API_LABEL = "api"


def mintable_name(name: str | None, domain: str | None) -> str | None:
    """``name`` normalised if Argon issues a certificate for it: ``api.<domain>`` or an
    endpoint-looking first label (``ep-...`` or ``ep-...-pooler``) right under the domain.
    Anything else gets the default certificate, so no one can make Argon mint at will."""
    if not name or not domain:
        return None
    name = name.lower().rstrip(".")
    domain = domain.lower().rstrip(".")
    if name == f"{API_LABEL}.{domain}":
        return name
    found = endpoint_from_host(name, domain)
    if found is None or not found[0].startswith("ep-"):
        return None
    return name


def binding_hash(cert: x509.Certificate) -> bytes:
    """``tls-server-end-point`` data (RFC 5929): the certificate's hash, with the hash of
    its signature algorithm, SHA-256 in place of MD5/SHA-1."""
    algo = cert.signature_hash_algorithm
    name = algo.name if algo is not None and algo.name not in ("md5", "sha1") else "sha256"
    return hashlib.new(name, cert.public_bytes(serialization.Encoding.DER)).digest()


@dataclass(frozen=True)
class MintedLeaf:
    cert_pem: bytes
    channel_binding: bytes


class NameMinter:
    """Leaf certificates for exact names under ``domain``, signed by Argon's CA on
    demand and kept in a bounded in-memory cache (least recently used goes first)."""

    def __init__(self, directory: Path, domain: str, ca_cert: x509.Certificate,
                 ca_key: ec.EllipticCurvePrivateKey, *, cache_size: int = LEAF_CACHE_SIZE
                 ) -> None:
        self.directory = directory
        self.domain = domain
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.cache_size = cache_size
        self.key_file = directory / NAMES_KEY
        if not self.key_file.exists():
            _write_private(self.key_file, _key_pem(ec.generate_private_key(ec.SECP256R1())))
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidInput(f"{self.key_file} is not an EC key; remove it to regenerate")
        self._key = key
        self._leaves: OrderedDict[str, MintedLeaf] = OrderedDict()
        self.minted = 0   # certificates signed since start (for tests and metrics)

    @classmethod
    def for_directory(cls, directory: Path, domain: str | None) -> NameMinter | None:
        """A minter when ``directory`` holds Argon's CA and a domain is configured."""
        ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
        if not domain or not (ca_cert_path.exists() and ca_key_path.exists()):
            return None
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise InvalidInput(f"{ca_key_path} is not an EC key; remove it to regenerate")
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        return cls(directory, domain, ca_cert, ca_key)

    def leaf(self, name: str) -> MintedLeaf | None:
        """The certificate for ``name`` (made now if needed), or None if Argon does not
        issue one for that name."""
        normal = mintable_name(name, self.domain)
        if normal is None:
            return None
        found = self._leaves.get(normal)
        if found is not None:
            self._leaves.move_to_end(normal)
            return found
        now = dt.datetime.now(dt.UTC)
        cert = _sign_leaf(self.ca_cert, self.ca_key, self._key, [x509.DNSName(normal)],
                          normal, now, LEAF_VALID_DAYS)
        found = MintedLeaf(cert.public_bytes(serialization.Encoding.PEM), binding_hash(cert))
        self._leaves[normal] = found
        self.minted += 1
        while len(self._leaves) > self.cache_size:
            self._leaves.popitem(last=False)
        logger.debug("minted a TLS certificate for %s", normal)
        return found


@dataclass(frozen=True)
class TlsConfig:
    """Certificate files plus the plaintext policy of the Postgres listeners."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    # sslmode=disable is accepted from loopback peers only, and only when this is True.
    allow_plaintext_loopback: bool = True
    # Set when Argon's own CA signs: exact-name leaves for endpoint and api hosts.
    minter: NameMinter | None = field(default=None, compare=False, repr=False)
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    # (server name, ALPN) -> the context showing that name's leaf, and its binding hash
    _leaf_contexts: OrderedDict[tuple[str, str], tuple[ssl.SSLContext, bytes]] = field(
        default_factory=OrderedDict, compare=False, repr=False)

    @classmethod
    def ensure(cls, directory: Path, domain: str | None, *,
               allow_plaintext_loopback: bool = True) -> TlsConfig:
        """Load the certificates in ``directory``, generating them on first use."""
        cert, key = directory / SERVER_CERT, directory / SERVER_KEY
        if not (cert.exists() and key.exists()):
            generate(directory, domain)
        ca = directory / CA_CERT
        return cls(cert, key, ca if ca.exists() else None, allow_plaintext_loopback,
                   NameMinter.for_directory(directory, domain))

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, *,
             allow_plaintext_loopback: bool = True) -> TlsConfig:
        """Use a certificate and key the user gave (checked now, not at first connect);
        it is shown for every name, so no certificates are minted."""
        config = cls(Path(cert_file), Path(key_file), None, allow_plaintext_loopback)
        config.server_context()
        return config

    def server_context(self, alpn: str = ALPN_POSTGRESQL) -> ssl.SSLContext:
        """The context a listener wraps with: the default certificate, ``alpn`` offered,
        and an SNI callback that records the name and switches to a minted leaf."""
        key = f"ctx:{alpn}"
        ctx = self._cache.get(key)
        if isinstance(ctx, ssl.SSLContext):
            return ctx
        ctx = self._context(self.cert_file, self.key_file, alpn)
        ctx.sni_callback = self._sni_callback(alpn)
        self._cache[key] = ctx
        return ctx

    def https_context(self) -> ssl.SSLContext:
        """For the HTTPS listener (``/sql`` and WebSocket): HTTP/1.1 offered by ALPN."""
        return self.server_context(ALPN_HTTP1)

    def _context(self, cert_file: Path, key_file: Path, alpn: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as e:
            raise InvalidInput(f"cannot load the TLS certificate {cert_file} with key "
                               f"{key_file}: {e}; give a PEM certificate and its key"
                               ) from None
        ctx.set_alpn_protocols([alpn])
        # No TLS 1.3 session tickets: Postgres clients never resume a session, and
        # each ticket is work and a record on every handshake.
        ctx.num_tickets = 0
        return ctx

    def _sni_callback(self, alpn: str) -> Callable[[Any, str | None, Any], None]:
        def on_sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
            # Stash the server name on the SSLObject; the session reads it after the
            # handshake, with the binding hash of the certificate actually presented.
            sslobj.argon_sni = name
            if self.minter is None or name is None:
                return
            try:
                chosen = self._leaf_context(name, alpn)
            except Exception:   # a failed mint must not kill the handshake: default cert
                logger.exception("cannot issue a TLS certificate for %s", name)
                return
            if chosen is not None:
                sslobj.context, sslobj.argon_channel_binding = chosen
        return on_sni

    def _leaf_context(self, name: str, alpn: str) -> tuple[ssl.SSLContext, bytes] | None:
        assert self.minter is not None
        leaf = self.minter.leaf(name)
        if leaf is None:
            return None
        contexts = self._leaf_contexts
        key = (name.lower().rstrip("."), alpn)
        found = contexts.get(key)
        if found is not None and found[1] == leaf.channel_binding:
            contexts.move_to_end(key)
            return found
        # load_cert_chain reads files only: a private temporary file, gone once loaded
        with tempfile.NamedTemporaryFile(dir=self.minter.directory, suffix=".crt") as tmp:
            tmp.write(leaf.cert_pem)
            tmp.flush()
            ctx = self._context(Path(tmp.name), self.minter.key_file, alpn)
        contexts[key] = (ctx, leaf.channel_binding)
        while len(contexts) > self.minter.cache_size:
            contexts.popitem(last=False)
        return ctx, leaf.channel_binding

    def channel_binding(self) -> bytes:
        """``tls-server-end-point`` data of the default certificate."""
        cached = self._cache.get("cb")
        if isinstance(cached, bytes):
            return cached
        digest = binding_hash(x509.load_pem_x509_certificate(self.cert_file.read_bytes()))
        self._cache["cb"] = digest
        return digest

    def presented_binding(self, sslobj: Any) -> bytes:
        """``tls-server-end-point`` data of the certificate this connection was shown:
        the minted leaf chosen by the SNI callback, else the default certificate."""
        minted = getattr(sslobj, "argon_channel_binding", None)
        return minted if isinstance(minted, bytes) else self.channel_binding()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _sign_leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
               key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName], common_name: str,
               now: dt.datetime, days: int) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def generate(directory: Path, domain: str | None) -> None:
    """Make (or reuse) a CA in ``directory`` and sign a server certificate valid for
    ``*.<domain>``, ``<domain>``, ``localhost``, ``*.localhost`` and ``127.0.0.1``."""
    directory.mkdir(parents=True, exist_ok=True)
    # Clients read the CA certificate (and only it): crossable, not listable.
    os.chmod(directory, 0o711)
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
    os.chmod(ca_cert_path, 0o644)
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName("*.localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if domain:
        names = [x509.DNSName(f"*.{domain}"), x509.DNSName(domain), *names]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign_leaf(ca_cert, ca_key, key, names, f"*.{domain}" if domain else "localhost",
                      now, VALID_DAYS)
    _write_private(directory / SERVER_KEY, _key_pem(key))
    (directory / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("generated TLS certificate for %s in %s", domain or "localhost", directory)
