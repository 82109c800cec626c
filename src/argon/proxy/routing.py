"""Which endpoint a connection is for: a pure function of what the client sent.

One rule per form in neon-compat.md ("Proxy routing and authentication"):

================================  =========================================
source                            example
================================  =========================================
TLS SNI                           ``ep-cool-x.<domain>`` / ``ep-cool-x-pooler.<domain>``
dedicated listener port           ``127.0.0.1:<port of the endpoint>``
startup ``options``               ``options=endpoint=ep-cool-x`` (or ``project=``)
password (cleartext, TLS only)    ``endpoint=ep-cool-x;secret`` or ``endpoint=ep-cool-x$secret``
================================  =========================================

Two sources that name different endpoints are an error.  Other ``-c``/``--`` options are
passed through to Postgres; libpq-only keys that some clients send as startup parameters
are dropped.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from argon.proxy.errors import ErrorKind, ProxyError

POOLER_SUFFIX = "-pooler"
NOT_ENDPOINT_LABELS = frozenset({"api", "apiauth"})
_ENDPOINT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Connection-string keys of libpq (and friends) that asyncpg, lib/pq and others forward as
# startup parameters; Postgres would fail on them with "unrecognized configuration
# parameter", so they never reach the compute.
LIBPQ_ONLY_KEYS = frozenset({
    "channel_binding", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslcrldir",
    "sslpassword", "sslnegotiation", "sslsni", "sslcompression", "sslcertmode",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "sslkeylogfile", "gssencmode",
    "gsslib", "gssdelegation", "krbsrvname", "requirepeer", "require_auth",
    "target_session_attrs", "load_balance_hosts", "connect_timeout", "host", "hostaddr",
    "port", "password", "passfile", "service", "servicefile", "requiressl", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "min_protocol_version", "max_protocol_version", "scram_client_key",
    "scram_server_key", "oauth_issuer", "oauth_client_id", "oauth_client_secret",
    "oauth_scope", "fallback_application_name",
})


# What Neon's proxy forwards to a compute (its pooler included): other startup parameters
# (search_path, statement_timeout, lock_timeout, ...) are dropped there, so PgBouncer
# never refuses them; settings in ``options`` reach PgBouncer, which refuses any it
# cannot keep per client ("unsupported startup parameter in options: ...").
POOLED_STARTUP_KEYS = frozenset({"user", "database", "application_name", "replication",
                                 "options", "client_encoding"})


def no_endpoint_error(domain: str | None) -> ProxyError:
    host = f"ep-<id>.{domain}" if domain else "the endpoint's host and port"
    return ProxyError(
        ErrorKind.ROUTING,
        "Endpoint ID is not specified. Connect to " + host + " (with a client that "
        "sends TLS SNI), or pass the endpoint ID as an option: "
        "'?options=endpoint%3D<endpoint-id>' in the URL (PGOPTIONS='endpoint=<endpoint-id>'"
        " for psql), or, over TLS, as part of the password: 'endpoint=<endpoint-id>;"
        "<password>'.", sqlstate="08004")


@dataclass(frozen=True)
class Route:
    """Where a connection goes; ``endpoint_id`` None means "ask for the password form"."""

    endpoint_id: str | None
    pooled: bool
    params: dict[str, str]     # startup parameters to forward to the compute
    # A time-travel query (``options=neon_lsn:<lsn>`` / ``neon_timestamp:<ts>``): the point,
    # as ("lsn" | "timestamp", value); the proxy then asks for a temporary read-only compute.
    at: tuple[str, str] | None = None


TIME_TRAVEL_KEYS = {"neon_lsn": "lsn", "neon_timestamp": "timestamp"}


def time_travel_from_options(options: str) -> tuple[tuple[str, str] | None, str]:
    """``neon_lsn:<lsn>`` or ``neon_timestamp:<ts>`` in ``options`` and the rest."""
    found: tuple[str, str] | None = None
    rest: list[str] = []
    for item in split_options(options):
        key, colon, value = item.partition(":")
        if colon and key in TIME_TRAVEL_KEYS:
            if found is not None or not value:
                raise ProxyError(ErrorKind.ROUTING, "give one time-travel point: "
                                 "options=neon_lsn:<lsn> or options=neon_timestamp:<time>",
                                 sqlstate="08004")
            found = (TIME_TRAVEL_KEYS[key], value)
        else:
            rest.append(item)
    return found, _join_options(rest)


def split_pooler(label: str) -> tuple[str, bool]:
    if label.endswith(POOLER_SUFFIX) and len(label) > len(POOLER_SUFFIX):
        return label[: -len(POOLER_SUFFIX)], True
    return label, False


def endpoint_from_host(host: str | None, domain: str | None) -> tuple[str, bool] | None:
    """Endpoint (and pooled flag) from a server name: its first label when the rest is the
    proxy's domain.  IP addresses, ``localhost`` and foreign names carry no endpoint."""
    if not host or not domain:
        return None
    host = host.lower().rstrip(".")
    suffix = "." + domain.lower().rstrip(".")
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    if "." in label or label in NOT_ENDPOINT_LABELS or not _ENDPOINT_RE.match(label):
        return None
    return split_pooler(label)


def endpoint_from_address(address: str | None, domain: str | None) -> tuple[str, bool] | None:
    """For WebSocket ``Host``/``?address=``: the domain rule, or any ``ep-`` first label."""
    if not address:
        return None
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    found = endpoint_from_host(host, domain)
    if found is None and not _is_ip(host):
        label = host.split(".", 1)[0].lower()
        if label.startswith("ep-") and _ENDPOINT_RE.match(label):
            found = split_pooler(label)
    return found


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def split_options(options: str) -> list[str]:
    """Split ``options`` as Postgres does: on whitespace, backslash escapes the next char."""
    out: list[str] = []
    cur: list[str] = []
    escaped = False
    for ch in options:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def _join_options(items: list[str]) -> str:
    return " ".join(i.replace("\\", "\\\\").replace(" ", "\\ ") for i in items)


def endpoint_from_options(options: str) -> tuple[tuple[str, bool] | None, str]:
    """The endpoint named in ``options`` (``endpoint=`` or ``project=``) and the options
    left for Postgres."""
    found: tuple[str, bool] | None = None
    rest: list[str] = []
    for item in split_options(options):
        key, eq, value = item.partition("=")
        if eq and key in ("endpoint", "project", "--endpoint", "--project"):
            value = value.strip().lower()
            if not _ENDPOINT_RE.match(value):
                raise ProxyError(ErrorKind.ROUTING, f"invalid endpoint ID in options: {value!r}",
                                 sqlstate="08004")
            this = split_pooler(value)
            if found is not None and found[0] != this[0]:
                raise ProxyError(ErrorKind.ROUTING,
                                 "options name two different endpoints", sqlstate="08004")
            found = this
        else:
            rest.append(item)
    return found, _join_options(rest)


def route(params: dict[str, str], *, sni: str | None, domain: str | None,
          port_endpoint: tuple[str, bool] | None = None,
          host_endpoint: tuple[str, bool] | None = None) -> Route:
    """Decide the endpoint from every source; raise a ProxyError when they disagree.

    ``host_endpoint`` is the WebSocket path's equivalent of SNI (Host header or address).
    """
    forward = {k: v for k, v in params.items() if k not in LIBPQ_ONLY_KEYS}
    from_options: tuple[str, bool] | None = None
    at: tuple[str, str] | None = None
    if "options" in forward:
        at, rest = time_travel_from_options(forward["options"])
        from_options, rest = endpoint_from_options(rest)
        if rest:
            forward["options"] = rest
        else:
            del forward["options"]
    sources = [s for s in (endpoint_from_host(sni, domain), host_endpoint, port_endpoint,
                           from_options) if s is not None]
    if not sources:
        return Route(None, False, forward, at)
    ids = {s[0] for s in sources}
    if len(ids) > 1:
        raise ProxyError(
            ErrorKind.ROUTING,
            "the endpoint ID given in options does not match the host name (SNI) or port "
            f"of the connection: {', '.join(sorted(ids))}", sqlstate="08004")
    return Route(sources[0][0], any(s[1] for s in sources), forward, at)


def compute_startup(params: dict[str, str], pooled: bool) -> dict[str, str]:
    """The startup parameters to send on: all of them to Postgres, Neon's few to PgBouncer."""
    if not pooled:
        return params
    return {k: v for k, v in params.items() if k in POOLED_STARTUP_KEYS}


def split_password_form(password: str) -> tuple[str, str] | None:
    """``endpoint=<id>;<secret>`` (or ``$``; ``project=`` is Neon's older spelling, as in
    options) -> (endpoint, secret); None otherwise."""
    key = next((k for k in ("endpoint=", "project=") if password.startswith(k)), None)
    if key is None:
        return None
    rest = password[len(key):]
    cut = min((i for i in (rest.find(";"), rest.find("$")) if i >= 0), default=-1)
    if cut <= 0:
        return None
    endpoint = rest[:cut].lower()
    if not _ENDPOINT_RE.match(endpoint):
        return None
    return endpoint, rest[cut + 1:]
