"""Where each running compute takes connections, kept in the metadata.

The runtime records the address its provider's ``start`` returned
(``endpoints.compute_host`` with ``compute_port``) in the transaction that marks the
endpoint active, and clears it in the one that marks it idle.  Another Argon process on
the same metadata database, whose own provider does not see that compute (it was started
by the first process, on its host), routes to the recorded address once it answers; when
it does not answer (its owner died), that process starts the compute itself.
"""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import Connection, select

from argon.compute import ComputeAddress
from argon.control.context import ControlContext
from argon.meta import tables as t

ANSWER_TIMEOUT = 1.0    # a live compute accepts a connection at once; a dead one refuses

CLEARED: dict[str, Any] = {"compute_host": None}


def recorded_values(address: ComputeAddress) -> dict[str, Any]:
    """The endpoint columns that record ``address`` (for an update's ``values``)."""
    return {"compute_host": address.host, "compute_port": address.port}


def recorded(conn: Connection, endpoint_id: str) -> ComputeAddress | None:
    return recorded_in(conn.execute(select(t.endpoints.c.compute_host,
                                           t.endpoints.c.compute_port)
                                    .where(t.endpoints.c.id == endpoint_id)).first())


def recorded_in(row: Any) -> ComputeAddress | None:
    """The address recorded in an endpoint row (one with compute_host, compute_port)."""
    if row is None or not row.compute_host or not row.compute_port:
        return None
    return ComputeAddress(row.compute_host, row.compute_port)


def live(address: ComputeAddress | None) -> ComputeAddress | None:
    """``address`` when something answers there, else None."""
    return address if address is not None and answers(address) else None


def answers(address: ComputeAddress, timeout: float = ANSWER_TIMEOUT) -> bool:
    """Whether something accepts connections at ``address`` (a socket connect only)."""
    try:
        if address.is_unix:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(address.socket_path)
        else:
            socket.create_connection((address.host, address.port), timeout).close()
    except OSError:
        return False
    return True


def live_recorded(ctx: ControlContext, endpoint_id: str) -> ComputeAddress | None:
    """The recorded address when it answers; None when none is recorded or it is dead."""
    with ctx.tx() as conn:
        address = recorded(conn, endpoint_id)
    return live(address)
