"""The two host modes, what each supports, and what the Neon-style one needs from the
machine: names under the domain that resolve to loopback, and a client that trusts
Argon's CA.  Used by ``argon start`` (notes) and ``argon doctor`` (checks).

Default mode: ``127.0.0.1:<port>`` hosts, one loopback port per endpoint and door (direct,
pooled); every client resolves them, nothing to set up; Neon's serverless driver needs
``fetchEndpoint``/``wsProxy`` pointed at ``--http-port``.

Neon-style mode (``--neon-style`` = ``--domain argon.localhost``, or any ``--domain``):
``ep-x.<domain>``, ``ep-x-pooler.<domain>`` routed by SNI, ``api.<domain>`` for ``/sql``
and the WebSocket on 443, as Neon's tools derive them.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

PROBE_LABEL = "ep-argon-probe"


@dataclass(frozen=True)
class Resolution:
    name: str
    addresses: tuple[str, ...]
    error: str | None = None

    @property
    def loopback(self) -> bool:
        return bool(self.addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                                            for a in self.addresses)


def probe_names(domain: str) -> list[str]:
    return [f"{PROBE_LABEL}.{domain}", f"{PROBE_LABEL}-pooler.{domain}", f"api.{domain}"]


def resolve(name: str) -> Resolution:
    """Resolve ``name`` with the system resolver (getaddrinfo), as libpq, Node's
    ``dns.lookup`` and Python do."""
    try:
        infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        return Resolution(name, (), str(e))
    return Resolution(name, tuple(dict.fromkeys(str(i[4][0]) for i in infos)))


def is_local_domain(domain: str) -> bool:
    return domain.rstrip(".").lower().split(".")[-1] == "localhost"


def resolution_fix(domain: str, *, nsswitch: Path = Path("/etc/nsswitch.conf"),
                   debian: Path = Path("/etc/debian_version")) -> str:
    """The one line that makes names under ``domain`` resolve on this system."""
    if not is_local_domain(domain):
        return (f"add a wildcard DNS record *.{domain} pointing at this host "
                f"(or use --neon-style for names under .localhost)")
    module = Path("/lib/x86_64-linux-gnu/libnss_myhostname.so.2")
    has_module = module.exists() or any(Path("/lib").glob("*/libnss_myhostname.so.2")) or \
        any(Path("/usr/lib").glob("*/libnss_myhostname.so.2"))
    if has_module:
        try:
            hosts = next((ln for ln in nsswitch.read_text().splitlines()
                          if ln.startswith("hosts:")), "")
        except OSError:
            hosts = ""
        if "myhostname" not in hosts and "resolve" not in hosts:
            return r"sudo sed -i 's/^hosts:\(.*\)/hosts:\1 myhostname/' /etc/nsswitch.conf"
    if debian.exists():
        return "sudo apt-get install -y libnss-myhostname"
    if shutil.which("dnf"):
        return "sudo dnf install -y systemd-libs   # provides nss-myhostname"
    if shutil.which("apk"):
        return (f"musl has no NSS modules: add `127.0.0.1 api.{domain} <endpoint>.{domain} "
                f"<endpoint>-pooler.{domain}` to /etc/hosts")
    return "install nss-myhostname (systemd) or use systemd-resolved"


def trust_hints(ca_file: Path) -> list[tuple[str, str]]:
    """How each client family is told to trust Argon's CA."""
    return [
        ("libpq (psql, psycopg)",
         f"PGSSLROOTCERT={ca_file} or sslrootcert={ca_file} with sslmode=verify-full"),
        ("Node (pg, @neondatabase/serverless, neonctl)", f"NODE_EXTRA_CA_CERTS={ca_file}"),
        ("Python (requests, httpx, ssl)",
         f"SSL_CERT_FILE={ca_file} / REQUESTS_CA_BUNDLE={ca_file}"),
        ("system store (curl, most tools)",
         (f"sudo cp {ca_file} /usr/local/share/ca-certificates/argon.crt && "
          "sudo update-ca-certificates")),
    ]


def mode_lines(domain: str | None, https_port: int, pg_port: int, http_port: int
               ) -> list[str]:
    """What `argon start` says about the mode in use and what each mode supports."""
    if not domain:
        return [
            ("hosts: default mode, 127.0.0.1:<port> per endpoint (direct and pooled); any "
             "client, no names needed"),
            (f"  serverless driver: set fetchEndpoint/wsProxy to 127.0.0.1:{http_port}; for "
             "Neon's tools unchanged (MCP server, toolkit) start with --neon-style"),
        ]
    port = "" if pg_port == 5432 else f":{pg_port}"
    lines = [(f"hosts: Neon-style mode, ep-<id>.{domain}{port} and ep-<id>-pooler.{domain}"
              f"{port} (SNI routing, exact-name certificates)")]
    if https_port:
        lines.append(f"  serverless driver unchanged: https://api.{domain}"
                     f"{'' if https_port == 443 else f':{https_port}'}/sql and "
                     f"wss://ep-<id>.{domain}/v2")
    return lines


def startup_notes(domain: str | None, https_port: int, https_note: str | None,
                  pg_port: int, http_port: int, ca_file: Path | None) -> list[str]:
    """Everything `argon start` says about hosts, HTTPS, name resolution and trust."""
    lines = mode_lines(domain, https_port, pg_port, http_port)
    if https_note:
        lines.append(f"  {https_note}")
    if domain:
        bad = [r for r in map(resolve, probe_names(domain)) if not r.addresses or
               (is_local_domain(domain) and not r.loopback)]
        if bad:
            lines.append(f"  names under {domain} do not resolve to loopback here "
                         f"({bad[0].name}: {bad[0].error or ', '.join(bad[0].addresses)}); "
                         f"fix: {resolution_fix(domain)}   (check: argon doctor)")
    if ca_file is not None:
        lines.append(f"trust Argon's CA ({ca_file}) for full verification:")
        lines += [f"  {who:<46} {how}" for who, how in trust_hints(ca_file)]
    return lines
