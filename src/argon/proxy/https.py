"""The HTTPS door where Neon's serverless driver looks: ``https://api.<domain>/sql`` and
``wss://<endpoint host>/v2``, both on port 443 (the driver drops any port).

The same Starlette app as the plain ``--http-port`` serves it, over TLS with the proxy's
certificates (exact-name leaves chosen by SNI), HTTP/1.1 with keep-alive, and the
process's HTTP guard.  Routing is by ``Host``: ``/sql`` reads the endpoint from the
``Neon-Connection-String`` header, a WebSocket from its ``ep-...`` host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from argon.errors import InvalidInput
from argon.proxy.http import HttpServer, http_config
from argon.proxy.tls import TlsConfig

logger = logging.getLogger(__name__)

HTTPS_PORT = 443
_CAP_NET_BIND_SERVICE = 10
# Traffic to a local HTTPS listener as clients resolve *.localhost: ::1 first, then
# 127.0.0.1 (glibc's nss-myhostname and systemd-resolved answer both).
LOOPBACKS = ("127.0.0.1", "::1")


def may_bind_privileged(port: int = HTTPS_PORT, *, status: Path = Path("/proc/self/status"),
                        sysctl: Path = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                        ) -> bool:
    """Whether this process may listen on ``port``: root, CAP_NET_BIND_SERVICE, or a
    kernel that lets anyone bind ports that low."""
    if port >= 1024 or os.geteuid() == 0:
        return True
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:") and int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1:
                return True
        return int(sysctl.read_text().strip()) <= port
    except (OSError, ValueError):
        return False


def not_bindable_message(port: int, http_port: int) -> str:
    """What to do when Argon may not listen on ``port``: the alternatives, exactly."""
    return (f"HTTPS for Neon's serverless driver is off: this process may not listen on "
            f"port {port}. Run Argon as root, or give it the right once with "
            f"`sudo setcap cap_net_bind_service=+ep {Path(sys.executable).resolve()}`, or "
            f"start it with --https-port 8443 and redirect 443 there: `sudo iptables -t nat "
            f"-A OUTPUT -o lo -p tcp --dport 443 -j REDIRECT --to-ports 8443` (nft: `nft add "
            f"rule ip nat output oif lo tcp dport 443 redirect to :8443`), or put a reverse "
            f"proxy (Caddy, nginx) on 443 in front of http://127.0.0.1:{http_port}")


def https_hosts(listen_host: str) -> tuple[str, ...]:
    return LOOPBACKS if listen_host == "127.0.0.1" else (listen_host,)


def _bind(hosts: tuple[str, ...], port: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            port = int(sock.getsockname()[1])   # 0 picked one: the others use the same
        except OSError as e:
            sock.close()
            if socks and host == "::1":   # no IPv6 loopback here: IPv4 alone is enough
                logger.info("HTTPS not on [::1]:%d: %s", port, e.strerror)
                continue
            for s in socks:
                s.close()
            raise InvalidInput(f"cannot listen for HTTPS on {host}:{port}: {e.strerror}; "
                               "choose another --https-port (0 turns HTTPS off)") from None
        socks.append(sock)
    return socks


async def start_https_server(app: Starlette, tls: TlsConfig, hosts: tuple[str, ...],
                             port: int) -> HttpServer:
    """Serve ``app`` over TLS on ``port`` of each of ``hosts`` in this event loop."""
    socks = _bind(hosts, port)

    def context(_config: Any, _default: Any) -> Any:
        return tls.https_context()

    config = http_config(app, ssl_context_factory=context)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=socks))
    while not server.started:
        if task.done():
            task.result()
            raise InvalidInput(f"the HTTPS listener on port {port} did not start")
        await asyncio.sleep(0.01)
    bound = int(socks[0].getsockname()[1])
    logger.info("HTTPS (/sql and WebSocket) on port %d of %s", bound,
                ", ".join(str(s.getsockname()[0]) for s in socks))
    return HttpServer(server, task, bound)


def choose_https_port(requested: int | None, domain: str | None, http_port: int
                      ) -> tuple[int, str | None]:
    """The port for HTTPS (0: none) and, when it is off, why, in words for the user."""
    if requested is not None:
        return requested, None if requested else "HTTPS is off (--https-port 0)"
    if not domain:
        return 0, None   # the default mode: the driver is pointed at --http-port instead
    if not may_bind_privileged(HTTPS_PORT):
        return 0, not_bindable_message(HTTPS_PORT, http_port)
    return HTTPS_PORT, None
