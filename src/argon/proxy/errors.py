"""The proxy's errors: each has a kind (log and metric label), a client-safe message,
a SQLSTATE for the ErrorResponse and whether a retry could help.

Only ``client_message`` (plus the optional hint) ever crosses the wire; anything about
Argon's internals stays in the log.
"""

from __future__ import annotations

from enum import StrEnum

from argon.errors import ArgonError


class ErrorKind(StrEnum):
    PROTOCOL = "protocol"          # garbage, truncated or oversized messages
    TLS = "tls"                    # TLS required, handshake failed
    ROUTING = "routing"            # no endpoint, conflicting endpoint sources
    AUTH = "auth"                  # wrong password, unknown role
    NOT_FOUND = "not_found"        # the endpoint does not exist
    CONTROL_PLANE = "control_plane"  # wake or role lookup failed
    COMPUTE = "compute"            # could not reach or start the compute
    TIMEOUT = "timeout"            # the client took too long to authenticate
    RATE_LIMITED = "rate_limited"  # too many compute starts asked for
    CLIENT_DISCONNECT = "client_disconnect"


class ProxyError(ArgonError):
    """An error the proxy reports to the client as a Postgres ErrorResponse."""

    code = "PROXY_ERROR"
    status = 400

    def __init__(self, kind: ErrorKind, client_message: str, *, sqlstate: str = "08000",
                 retryable: bool = False, hint: str | None = None,
                 severity: str = "FATAL") -> None:
        super().__init__(client_message)
        self.kind = kind
        self.client_message = client_message
        self.sqlstate = sqlstate
        self.retryable = retryable
        self.hint = hint
        self.severity = severity


def protocol_error(message: str) -> ProxyError:
    return ProxyError(ErrorKind.PROTOCOL, message, sqlstate="08P01")


def auth_failed(user: str) -> ProxyError:
    # Postgres' own text and SQLSTATE, so that clients and tools react as they would to it.
    return ProxyError(ErrorKind.AUTH, f'password authentication failed for user "{user}"',
                      sqlstate="28P01")
