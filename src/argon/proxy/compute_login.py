"""The proxy's side of a compute's (or PgBouncer's) login: SCRAM as the client's role with
the client's ClientKey (see ``auth/scram_client.py``), and a whole login for a spare."""

from __future__ import annotations

import asyncio
import logging

from argon.proxy import pq
from argon.proxy.auth.scram_client import ScramClient, ScramKeys
from argon.proxy.backend import ComputeAddress
from argon.proxy.dial import open_compute
from argon.proxy.errors import ErrorKind, ProxyError
from argon.proxy.relay import PgSide
from argon.proxy.spares import Spare

logger = logging.getLogger(__name__)

# Messages from the compute before ReadyForQuery (ParameterStatus, notices) are small.
MAX_COMPUTE_STARTUP_MESSAGE = 1 << 20
SPARE_LOGIN_TIMEOUT = 5.0


async def answer_auth(compute: PgSide, body: bytes, keys: ScramKeys | None) -> None:
    """Answer an AuthenticationRequest with SCRAM and the client's ClientKey;
    AuthenticationOk needs nothing."""
    code = pq.int32(body)
    if code == pq.AUTH_OK:
        return
    if code != pq.AUTH_SASL:
        raise ProxyError(ErrorKind.COMPUTE, f"the compute asked for authentication "
                         f"type {code}; only SCRAM is supported", sqlstate="08006")
    if keys is None:
        raise ProxyError(ErrorKind.COMPUTE, "the compute asked for SCRAM but the client "
                         "did not authenticate with a SCRAM password", sqlstate="08006")
    scram = ScramClient(keys)
    offered = [m.decode() for m in body[4:].split(b"\0") if m]
    compute.write(pq.message(b"p", scram.initial(offered)))
    compute.write(pq.message(b"p", scram.continue_(
        await _sasl(compute, pq.AUTH_SASL_CONTINUE))))
    scram.final(await _sasl(compute, pq.AUTH_SASL_FINAL))


async def finish_scram(compute: PgSide, scram: ScramClient | None,
                       keys: ScramKeys | None) -> None:
    """The second half of a SCRAM login begun early (``argon.proxy.early``)."""
    if scram is None or keys is None:
        raise ProxyError(ErrorKind.COMPUTE, "the compute's SCRAM login was begun for a "
                         "client that did not authenticate with SCRAM", sqlstate="08006")
    compute.write(pq.message(b"p", scram.proof(keys.client_key)))
    scram.final(await _sasl(compute, pq.AUTH_SASL_FINAL))


async def _sasl(compute: PgSide, expected: int) -> bytes:
    kind, body = await compute.read_message(MAX_COMPUTE_STARTUP_MESSAGE)
    if kind == b"E":    # e.g. the proof was refused: Postgres' own words, to the log
        fields = pq.parse_error_fields(body)
        logger.warning("compute refused the proxy's SCRAM login: %s", fields.get("M"))
        raise ProxyError(ErrorKind.COMPUTE, "could not authenticate to the compute",
                         sqlstate=fields.get("C", "08006"))
    if kind != b"R" or pq.int32(body) != expected:
        raise ProxyError(ErrorKind.COMPUTE, "unexpected message from the compute during "
                         "SCRAM authentication", sqlstate="08006")
    return body[4:]


async def open_spare(address: ComputeAddress, params: dict[str, str],
                     keys: ScramKeys) -> Spare | None:
    """A whole login to ``address`` kept for a later client; None if anything is off."""
    side: PgSide | None = None
    try:
        async with asyncio.timeout(SPARE_LOGIN_TIMEOUT):
            side = await open_compute(address, lambda: PgSide("pooler"))
            side.write(pq.startup_message(params))
            reply: list[tuple[bytes, bytes]] = []
            backend_key: bytes | None = None
            while True:
                kind, body = await side.read_message(MAX_COMPUTE_STARTUP_MESSAGE)
                if kind == b"R":
                    await answer_auth(side, body, keys)
                elif kind == b"K":
                    backend_key = body
                elif kind == b"E":
                    break
                else:
                    reply.append((kind, body))
                    if kind == b"Z":
                        if backend_key is not None:
                            return Spare(side, address, reply, backend_key)
                        break
    except (OSError, TimeoutError, ProxyError) as e:
        logger.debug("spare login to %s failed: %s", address, e)
    if side is not None:
        side.close()
    return None
