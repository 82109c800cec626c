"""The proxy: the one door for clients (Postgres wire protocol, TLS/SNI routing, SCRAM,
wake on connect, cancel, WebSocket and SQL over HTTP)."""

from argon.proxy.backend import ComputeAddress, ProxyBackend
from argon.proxy.errors import ErrorKind, ProxyError
from argon.proxy.server import ProxyServer
from argon.proxy.tls import TlsConfig

__all__ = ["ComputeAddress", "ErrorKind", "ProxyBackend", "ProxyError", "ProxyServer",
           "TlsConfig"]
