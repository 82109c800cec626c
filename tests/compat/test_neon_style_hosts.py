"""Neon's clients unchanged against Argon's Neon-style mode (``argon start --neon-style``).

Given only the connection string Argon prints and its CA (``NODE_EXTRA_CA_CERTS``,
``sslrootcert``), with no ``fetchEndpoint``/``wsProxy``/``useSecureWebSocket`` overrides:
``@neondatabase/serverless`` derives ``https://api.argon.localhost/sql`` and
``wss://ep-x.argon.localhost/v2`` (port 443, the driver drops the port), node-postgres
verifies the certificate fully on ``sslmode=require``, and libpq checks it with
``verify-full``.  All of that needs exact-name certificates (no wildcard can cover
``ep-x.argon.localhost`` for OpenSSL and Node with a one-label parent) and port 443.

Needs port 443 (root or CAP_NET_BIND_SERVICE) and names under ``argon.localhost`` that
resolve to loopback (nss-myhostname or systemd-resolved; CI installs libnss-myhostname).
One module-scoped Argon owns 443 while it holds the port-443 lock (tests/fixtures/port443.py).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from cryptography import x509

from argon.proxy.https import HTTPS_PORT
from argon.settings import NEON_STYLE_DOMAIN
from tests.compat.conftest import Neonctl, NodeResult, need_node, run_node_script
from tests.fixtures.argon_env import ArgonEnv, running_env
from tests.fixtures.common import backends_of_open_clients
from tests.fixtures.port443 import neon_style_skip_reason

# the first test also waits for the port-443 lock (up to LOCK_TIMEOUT)
pytestmark = pytest.mark.timeout(1200)
DOMAIN = NEON_STYLE_DOMAIN


class NeonStyle:
    def __init__(self, env: ArgonEnv) -> None:
        self.env = env
        self.ca = env.home / "tls" / "ca.crt"
        printed = re.search(r"default project: (\S+)", env.output())
        assert printed, env.output()
        self.uri = printed.group(1)          # exactly what `argon start` printed
        m = re.search(r"@(ep-[a-z0-9-]+)\.", self.uri)
        assert m, self.uri
        self.endpoint = m.group(1)

    @property
    def pooled_uri(self) -> str:
        return self.uri.replace(f"@{self.endpoint}.", f"@{self.endpoint}-pooler.")

    def node(self, mode: str, uri: str, *, ca: bool = True) -> NodeResult:
        env = {"DATABASE_URL": uri, "MODE": mode, "NODE_NO_WARNINGS": "1"}
        # empty: Node loads no extra CA, so only the system store is trusted
        env["NODE_EXTRA_CA_CERTS"] = str(self.ca) if ca else ""
        return run_node_script("neon_style_hosts.mjs", env, timeout=120)

    def node_ok(self, mode: str, uri: str) -> Any:
        res = self.node(mode, uri)
        assert res.code == 0, f"{mode} failed:\n{res.stderr}\n{res.stdout}"
        return res.json()


@pytest.fixture(scope="module")
def neon_style(port443: None) -> Iterator[NeonStyle]:
    # port443: this Argon binds 443 for the whole module; other runs wait for the lock
    if reason := neon_style_skip_reason(DOMAIN):
        pytest.skip(reason)
    need_node("@neondatabase/serverless")
    need_node("pg")
    with running_env("neon-style", ["--neon-style"]) as env:
        yield NeonStyle(env)


def test_start_prints_the_mode_the_hosts_and_how_to_trust_the_ca(neon_style: NeonStyle) -> None:
    out = neon_style.env.output()
    assert f"{neon_style.endpoint}.{DOMAIN}:" in neon_style.uri
    assert "Neon-style mode" in out
    assert f"https://api.{DOMAIN}/sql" in out
    for hint in (f"NODE_EXTRA_CA_CERTS={neon_style.ca}", f"sslrootcert={neon_style.ca}",
                 f"SSL_CERT_FILE={neon_style.ca}", "update-ca-certificates"):
        assert hint in out, hint


def test_serverless_neon_over_https_without_overrides(neon_style: NeonStyle) -> None:
    out = neon_style.node_ok("http", neon_style.uri)
    assert out["endpoint"] == f"https://api.{DOMAIN}/sql"
    assert out["rows"] == [{"n": 42, "who": "neondb_owner"}]
    assert out["tx"] == [[{"a": 1}], [{"b": 2}]]


def test_serverless_driver_refuses_without_the_ca(neon_style: NeonStyle) -> None:
    # the certificate really is checked: without Argon's CA the same call fails
    res = neon_style.node("http", neon_style.uri, ca=False)
    assert res.code != 0 and "fetch failed" in res.stderr, res.stderr[-2000:]


def test_serverless_pool_over_wss_without_overrides(neon_style: NeonStyle) -> None:
    out = neon_style.node_ok("ws", neon_style.uri)
    assert out == {"rows": [{"n": 42}], "inTx": [{"ok": True}]}


@pytest.mark.parametrize("door", ["direct", "pooled"])
def test_node_postgres_sslmode_require_verifies_exact_names(neon_style: NeonStyle,
                                                            door: str) -> None:
    uri = neon_style.uri if door == "direct" else neon_style.pooled_uri
    host = uri.split("@", 1)[1].split(":", 1)[0]
    out = neon_style.node_ok("pg", uri)
    assert out["tls"] == {"authorized": True, "san": f"DNS:{host}", "servername": host}
    assert out["rows"] == [{"one": 1, "who": "neondb_owner"}]
    refused = neon_style.node("pg", uri, ca=False)
    assert refused.code != 0 and "unable to verify" in refused.stderr, refused.stderr[-2000:]


@pytest.mark.parametrize("door", ["direct", "pooled"])
def test_libpq_verify_full_with_channel_binding(neon_style: NeonStyle, door: str) -> None:
    uri = neon_style.uri if door == "direct" else neon_style.pooled_uri
    # the printed string keeps channel_binding=require: SCRAM-PLUS binds to the minted
    # leaf this connection was shown
    assert "channel_binding=require" in uri
    dsn = uri.replace("sslmode=require", "sslmode=verify-full") + f"&sslrootcert={neon_style.ca}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(uri.replace("sslmode=require", "sslmode=verify-full")
                        + "&sslrootcert=system", connect_timeout=30)


def test_python_https_sql_with_keep_alive(neon_style: NeonStyle) -> None:
    ctx = ssl.create_default_context(cafile=str(neon_style.ca))
    conn = http.client.HTTPSConnection(f"api.{DOMAIN}", HTTPS_PORT, context=ctx, timeout=60)
    answers = []
    socks = []
    for n in (1, 2):
        body = json.dumps({"query": "SELECT $1::int AS n", "params": [n]})
        conn.request("POST", "/sql", body=body, headers={
            "Neon-Connection-String": neon_style.uri, "Content-Type": "application/json"})
        r = conn.getresponse()
        answers.append((r.status, json.loads(r.read())["rows"]))
        socks.append(conn.sock)
    conn.close()
    assert answers == [(200, [{"n": 1}]), (200, [{"n": 2}])]
    assert socks[0] is socks[1], "the second request must reuse the TLS connection"


def test_doctor_finds_names_ports_and_trust(neon_style: NeonStyle) -> None:
    checks = neon_style.env.cli_json("doctor")
    by_name = {c["name"]: c for c in checks}
    assert not [c for c in checks if c["status"] == "fail"], checks
    assert by_name[f"resolve api.{DOMAIN}"]["status"] == "ok"
    assert by_name[f"TLS api.{DOMAIN}:443 (Argon CA)"]["status"] == "ok"
    assert by_name["port HTTPS /sql, WSS"]["status"] == "ok"


def test_other_names_under_the_domain_get_no_certificate(neon_style: NeonStyle) -> None:
    # a name that is neither api nor an endpoint label gets the default certificate,
    # whose *.argon.localhost covers it for Python but names nothing minted
    ctx = ssl.create_default_context(cafile=str(neon_style.ca))
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=f"www.{DOMAIN}") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"*.{DOMAIN}" in sans and f"www.{DOMAIN}" not in sans


def test_neonctl_pooled_string_goes_through_pgbouncer(neon_style: NeonStyle,
                                                     argon_tmp: Path) -> None:
    """neonctl derives the pooled host by inserting -pooler after the endpoint id; in this
    mode that host is routed by SNI to the endpoint's PgBouncer, verified against the CA."""
    (argon_tmp / "cfg").mkdir()
    env = neon_style.env
    neonctl = Neonctl(SimpleNamespace(api_url=env.api_url, api_key=env.api_key),  # type: ignore[arg-type]
                      argon_tmp / "cfg")
    pid = env.default_project()["id"]
    direct = neonctl.run("connection-string", "main", "--project-id", pid).stdout.strip()
    pooled = neonctl.run("connection-string", "main", "--project-id", pid,
                         "--pooled").stdout.strip()
    assert f"@{neon_style.endpoint}.{DOMAIN}" in direct, direct
    assert f"@{neon_style.endpoint}-pooler.{DOMAIN}" in pooled, pooled

    verify = {"sslmode": "verify-full", "sslrootcert": str(neon_style.ca)}
    # open direct connections have a backend each; PgBouncer hands the same idle server
    # connection to clients querying one after another
    assert len(backends_of_open_clients(direct, **verify)) == 2
    assert len(backends_of_open_clients(pooled, **verify)) == 1


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _chromium_page(url: str, home: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    # Chromium on Linux trusts the CAs of the NSS database in $HOME/.pki/nssdb
    return subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home)})


@pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("certutil") is None,
                    reason="needs Debian's chromium and libnss3-tools (scripts/test installs "
                           "them in CI)")
def test_chromium_accepts_the_per_name_certificates(neon_style: NeonStyle,
                                                    argon_tmp: Path) -> None:
    trusting, bare = argon_tmp / "trusting", argon_tmp / "bare"
    nssdb = trusting / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    bare.mkdir()
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "argon",
                    "-i", str(neon_style.ca)], check=True)
    for host in (f"api.{DOMAIN}", f"{neon_style.endpoint}.{DOMAIN}"):
        url = f"https://{host}/sql"     # GET: Argon's own 405 page, once TLS is accepted
        page = _chromium_page(url, trusting, argon_tmp / f"profile-{host}")
        assert "Method Not Allowed" in page.stdout, (page.stdout[-500:], page.stderr[-1500:])
        refused = _chromium_page(url, bare, argon_tmp / f"profile-bare-{host}")
        assert "ERR_CERT_AUTHORITY_INVALID" in refused.stderr, refused.stderr[-1500:]
