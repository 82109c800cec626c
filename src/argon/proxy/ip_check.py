"""The IP allow list on the proxy's doors: ask the control plane (which holds the rule,
``argon.control.ip_allow``) after routing and before authentication, and refuse with
Neon's text so that clients and people recognise it."""

from __future__ import annotations

from argon.proxy.backend import ProxyBackend
from argon.proxy.errors import ErrorKind, ProxyError


def ip_not_allowed_text(address: str) -> str:
    # Neon's proxy text (AuthError::IpAddressNotAllowed), word for word.
    return (f"This IP address {address} is not allowed to connect to this endpoint. "
            "Please add it to the allowed list in the Neon console. "
            "Make sure to check for IPv4 or IPv6 addresses.")


async def check_client_address(backend: ProxyBackend, endpoint_id: str,
                               address: str | None) -> None:
    """Raise a ProxyError (SQLSTATE 28000, as Postgres answers a host that pg_hba.conf
    does not list) when the endpoint's allow list refuses ``address``."""
    if await backend.ip_allowed(endpoint_id, address or ""):
        return
    raise ProxyError(ErrorKind.AUTH, ip_not_allowed_text(address or "unknown"),
                     sqlstate="28000")
