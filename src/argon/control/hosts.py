"""Endpoint host names and connection URIs.

With a configured domain (wildcard DNS), hosts are Neon's ``ep-x.<domain>`` and
``ep-x-pooler.<domain>``; the proxy routes them by SNI on the Postgres port.  Without one
(the default: offline laptops and CI have no DNS for ``*.localhost``) each endpoint owns
two stable loopback ports on the proxy, one direct and one pooled, and its host is
``127.0.0.1:<port>``, which every client resolves.
"""

from __future__ import annotations

from urllib.parse import quote

from argon.control.models import ConnectionUri
from argon.settings import Settings


def endpoint_host(settings: Settings, endpoint_id: str, port: int | None,
                  pooled: bool = False) -> str:
    if settings.domain:
        label = f"{endpoint_id}-pooler" if pooled else endpoint_id
        suffix = "" if settings.pg_port == 5432 else f":{settings.pg_port}"
        return f"{label}.{settings.domain}{suffix}"
    return f"{settings.listen_host}:{port}" if port else settings.listen_host


def connection_uri(host: str, role: str, password: str | None, database: str) -> ConnectionUri:
    auth = quote(role, safe="") + (f":{quote(password, safe='')}" if password else "")
    uri = (f"postgresql://{auth}@{host}/{quote(database, safe='')}"
           "?sslmode=require&channel_binding=require")
    hostname, _, port = host.partition(":")
    params = {"role": role, "password": password or "", "database": database,
              "host": hostname, "port": port or "5432"}
    return ConnectionUri(uri, params)
