"""Neon-style hosts on one machine: ``--domain localhost`` where ``*.localhost`` resolves.

neonctl builds the pooled host itself as ``host.replace(id, id + "-pooler")``; with
``ep-x.localhost`` hosts that gives ``ep-x-pooler.localhost``, which the proxy routes by
SNI to the endpoint's PgBouncer.  Needs ``*.localhost`` to resolve to loopback
(systemd-resolved or nss-myhostname; CI installs Debian's libnss-myhostname).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.compat.conftest import Neonctl, need_node
from tests.fixtures.argon_env import ArgonEnv, running_env
from tests.fixtures.common import backends_of_open_clients


def localhost_names_resolve() -> bool:
    try:
        infos = socket.getaddrinfo("ep-argon-probe.localhost", 5432)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@pytest.fixture(scope="module")
def domain_env() -> Iterator[ArgonEnv]:
    if not localhost_names_resolve():
        pytest.skip("*.localhost names do not resolve on this machine (install "
                    "libnss-myhostname or use systemd-resolved)")
    need_node()
    # HTTPS off: only tests/compat/test_neon_style_hosts.py binds port 443
    with running_env("localhost-domain", ["--domain", "localhost", "--https-port", "0"]) as env:
        yield env


def test_neonctl_pooled_string_is_distinct_and_goes_through_pgbouncer(
        domain_env: ArgonEnv, argon_tmp: Path) -> None:
    (argon_tmp / "cfg").mkdir()
    api = SimpleNamespace(api_url=domain_env.api_url, api_key=domain_env.api_key)
    neonctl = Neonctl(api, argon_tmp / "cfg")  # type: ignore[arg-type]
    pid = domain_env.default_project()["id"]
    direct = neonctl.run("connection-string", "main", "--project-id", pid).stdout.strip()
    pooled = neonctl.run("connection-string", "main", "--project-id", pid,
                         "--pooled").stdout.strip()
    assert ".localhost" in direct and "-pooler.localhost" in pooled, (direct, pooled)
    # open direct connections have a backend each; PgBouncer hands the same idle server
    # connection to clients querying one after another
    assert len(backends_of_open_clients(direct)) == 2
    assert len(backends_of_open_clients(pooled)) == 1


def test_api_endpoint_host_is_neon_style(domain_env: ArgonEnv) -> None:
    pid = domain_env.default_project()["id"]
    ep = domain_env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"][0]
    assert ep["host"] == f"{ep['id']}.localhost:{domain_env.pg_port}"
