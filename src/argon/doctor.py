"""``argon doctor``: try what clients try, from this machine, against the running Argon:
resolve the Neon-style names, open the ports, and verify TLS against Argon's CA (and
the system store) with the server names clients send."""

from __future__ import annotations

import json
import socket
import ssl
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from argon.home import STATE_FILE
from argon.neon_style import PROBE_LABEL, probe_names, resolution_fix, resolve

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str        # ok, warn, fail, skip
    detail: str
    fix: str = ""


def _tcp(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=TIMEOUT)


def _tls(host: str, port: int, ctx: ssl.SSLContext, postgres: bool) -> str:
    """Handshake as a verifying client does; returns the negotiated version."""
    with _tcp(host, port) as raw:
        if postgres:
            raw.sendall(SSL_REQUEST)
            if raw.recv(1) != b"S":
                raise ssl.SSLError("the server refused SSLRequest")
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return str(tls.version())


def port_checks(state: dict[str, Any]) -> list[Check]:
    host = state.get("listen_host") or "127.0.0.1"
    out = []
    for key, what in (("api_port", "API"), ("pg_port", "Postgres proxy"),
                      ("http_port", "/sql (plain HTTP)"), ("https_port", "HTTPS /sql, WSS")):
        port = state.get(key)
        if not port:
            out.append(Check(f"port {what}", "skip", "off"))
            continue
        try:
            _tcp(host, int(port)).close()
            out.append(Check(f"port {what}", "ok", f"{host}:{port} accepts connections"))
        except OSError as e:
            out.append(Check(f"port {what}", "fail", f"{host}:{port}: {e}",
                             "is Argon running? see `argon status`"))
    return out


def name_checks(domain: str) -> list[Check]:
    out = []
    for name in probe_names(domain):
        r = resolve(name)
        if r.loopback or (r.addresses and not domain.endswith("localhost")):
            out.append(Check(f"resolve {name}", "ok", ", ".join(r.addresses)))
        else:
            out.append(Check(f"resolve {name}", "fail",
                             r.error or f"not loopback: {', '.join(r.addresses)}",
                             resolution_fix(domain)))
    return out


def trust_checks(domain: str, state: dict[str, Any], ca_file: Path) -> list[Check]:
    targets = [(f"{PROBE_LABEL}.{domain}", int(state.get("pg_port") or 0), True)]
    if state.get("https_port"):
        targets.append((f"api.{domain}", int(state["https_port"]), False))
    out = []
    for host, port, postgres in targets:
        for label, ctx in (("Argon CA", ssl.create_default_context(cafile=str(ca_file))),
                           ("system store", ssl.create_default_context())):
            name = f"TLS {host}:{port} ({label})"
            try:
                version = _tls(host, port, ctx, postgres)
                out.append(Check(name, "ok", f"{version}, certificate verified for {host}"))
            except ssl.SSLCertVerificationError as e:
                fix = (f"trust {ca_file}: sudo cp {ca_file} /usr/local/share/ca-certificates/"
                       "argon.crt && sudo update-ca-certificates" if label == "system store"
                       else f"remove {ca_file.parent} and restart to regenerate")
                out.append(Check(name, "warn" if label == "system store" else "fail",
                                 e.verify_message or str(e), fix))
            except OSError as e:
                out.append(Check(name, "fail", str(e), "see the resolve and port checks"))
    return out


def pool_check(home: Path) -> Check:
    """Where the timelines live: the storage pool, a reflink filesystem, or copies."""
    from argon.storage.drivers import reflink_supported  # noqa: PLC0415
    from argon.storage.pool import PoolKind, what_to_do  # noqa: PLC0415
    from argon.storage.pool_mount import describe, host_missing  # noqa: PLC0415
    pool = describe(home)
    if pool.kind is PoolKind.POOL:
        return Check("storage pool", "ok", pool.line())
    if pool.note:   # the image exists but is not mounted
        return Check("storage pool", "fail", pool.note, "restart Argon as root")
    try:
        if reflink_supported(home / "timelines"):
            return Check("storage pool", "ok", "none needed: the timelines' filesystem has "
                                               "reflinks (instant branches)")
    except OSError:
        pass   # not allowed to probe this home
    return Check("storage pool", "warn", "none: branches are full copies",
                 what_to_do(host_missing()) if host_missing() else
                 "a new home started as root gets the pool (--storage-pool auto)")


def run_checks(home: Path) -> list[Check]:
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return [Check("Argon running", "fail", f"no state in {home}", "argon start")]
    checks = [Check("Argon running", "ok", f"pid {state.get('pid')}, home {home}")]
    checks += port_checks(state)
    checks.append(pool_check(home))
    domain = state.get("domain")
    if not domain:
        checks.append(Check("Neon-style hosts", "skip",
                            "default mode (127.0.0.1:<port>); start with --neon-style"))
        return checks
    checks += name_checks(domain)
    ca_file = home / "tls" / "ca.crt"
    checks += trust_checks(domain, state, ca_file)
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<5} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<5} {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)
