"""One client session after TLS: startup, routing, authentication, wake, connecting to
the compute, then relaying.  Shared by the TCP listeners and the WebSocket path.

The pure pieces (``pq``, ``routing``, ``auth.scram``) decide; this module only moves
messages between them, the client and the compute.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from argon.errors import EndpointDisabled, InvalidInput, NotFound
from argon.pg.scram import ScramVerifier
from argon.proxy import pq
from argon.proxy.auth.scram import ScramServer, mechanisms
from argon.proxy.auth.scram_client import ScramKeys, client_key_from_password
from argon.proxy.backend import ComputeAddress
from argon.proxy.backend_reset import fit_for_login, reset_backend
from argon.proxy.dial import open_compute
from argon.proxy.compute_login import (MAX_COMPUTE_STARTUP_MESSAGE, answer_auth, finish_scram,
                                      open_spare)
from argon.proxy.early import EarlyAttempt, EarlyCompute
from argon.proxy.errors import ErrorKind, ProxyError, auth_failed, protocol_error
from argon.proxy.ip_check import check_client_address
from argon.proxy.relay import Peer, PgSide
from argon.proxy.reuse import LoginWatch
from argon.proxy.spares import Spare, SpareKey, spare_key
from argon.proxy.routing import (compute_startup, no_endpoint_error, route,
                                 split_password_form, split_pooler)
from argon.proxy.workers import shared_workers

if TYPE_CHECKING:
    from argon.proxy.server import ProxyServer

logger = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3
# verifiers are immutable values: parse each once, not on every connection
_parsed_verifier = functools.lru_cache(maxsize=4096)(ScramVerifier.parse)


class ClientChannel(Protocol):
    closed: bool
    bytes_in: int
    done: asyncio.Future[None]

    async def read_exact(self, n: int) -> bytes: ...

    async def read_message(self, max_len: int) -> tuple[bytes, bytes]: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def start_relay(self, peer: Peer) -> None: ...

    def as_peer(self) -> Peer: ...


@dataclass(frozen=True)
class ClientInfo:
    peer: str
    tls: bool
    loopback: bool
    sni: str | None = None
    port_endpoint: tuple[str, bool] | None = None
    host_endpoint: tuple[str, bool] | None = None
    websocket: bool = False
    address: str | None = None   # the client's IP, for the endpoint's IP allow list
    # tls-server-end-point data of the certificate this connection was shown (SCRAM-PLUS)
    channel_binding: bytes | None = None


class Session:
    def __init__(self, proxy: ProxyServer, client: ClientChannel, info: ClientInfo) -> None:
        self.proxy = proxy
        self.client = client
        self.info = info
        self.endpoint: str | None = None
        self.compute: PgSide | None = None
        self.outcome = "ok"
        self.at: tuple[str, str] | None = None     # time-travel point, if any
        self.lease: str | None = None              # its temporary compute
        # the client's ClientKey once authenticated: the proxy logs into the compute
        # (or its PgBouncer) as the client's role with it, since they trust nobody
        self.scram_keys: ScramKeys | None = None
        self.early: EarlyAttempt | None = None      # compute connection opened during auth
        self.auth_tail = b""     # SCRAM's final message, not yet sent
        self._kept = False       # the pooled login was taken off the relay for reuse

    async def run(self) -> None:
        started = time.monotonic()
        metrics = self.proxy.metrics
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.proxy.auth_timeout, self._auth_timeout)
        try:
            await self._run(timer)
        except ProxyError as e:
            self._fail(e)
        except Exception:
            logger.exception("proxy session from %s failed", self.info.peer)
            self._fail(ProxyError(ErrorKind.COMPUTE, "internal proxy error", sqlstate="XX000"))
        finally:
            timer.cancel()
            if self._kept and isinstance(self.client, PgSide):
                # the client sent its Terminate and closes too: no TLS goodbye to write
                self.client.abort()
            else:
                self.client.close()
            if self.early is not None:
                self.early.discard()
            if self.compute is not None:
                self.compute.close()
                metrics.bytes_to_clients += self.compute.bytes_in
            metrics.bytes_from_clients += self.client.bytes_in
            logger.info("session from %s endpoint=%s outcome=%s duration=%.3fs in=%d",
                        self.info.peer, self.endpoint, self.outcome,
                        time.monotonic() - started, self.client.bytes_in)

    def _auth_timeout(self) -> None:
        self.outcome = ErrorKind.TIMEOUT.value
        self.proxy.metrics.errors[ErrorKind.TIMEOUT.value] += 1
        self.client.write(pq.error_response(ProxyError(
            ErrorKind.TIMEOUT, "canceling authentication due to timeout", sqlstate="08006")))
        self.client.close()

    def _fail(self, e: ProxyError) -> None:
        if self.outcome == ErrorKind.TIMEOUT.value:
            return   # already answered and counted by the timer
        self.outcome = e.kind.value
        self.proxy.metrics.errors[e.kind.value] += 1
        if e.kind is ErrorKind.CLIENT_DISCONNECT:
            return
        logger.info("session from %s refused (%s): %s", self.info.peer, e.kind,
                    e.client_message)
        if not self.client.closed:
            self.client.write(self.auth_tail + pq.error_response(e))

    async def _read_startup(self) -> pq.StartupMessage | None:
        client = self.client
        while True:
            head = await client.read_exact(4)
            length = pq.startup_length(head)
            packet = pq.parse_startup(head + await client.read_exact(length - 4))
            if isinstance(packet, pq.CancelRequest):
                self.outcome = "cancel"
                self.proxy.metrics.cancel_requests += 1
                await self.proxy.cancels.cancel(packet.pid, packet.key)
                return None
            if isinstance(packet, pq.GssEncRequest):
                client.write(b"N")
                continue
            if isinstance(packet, pq.SslRequest):
                if self.info.tls or self.info.websocket:
                    raise protocol_error("SSL request received on an encrypted connection")
                client.write(b"N")   # TLS is off on this proxy; accept plaintext rules below
                continue
            return packet

    async def _run(self, timer: asyncio.TimerHandle) -> None:
        startup = await self._read_startup()
        if startup is None:
            return
        info, client = self.info, self.client
        if not (info.tls or info.websocket or (info.loopback and self.proxy.plaintext_loopback)):
            raise ProxyError(ErrorKind.TLS, "connection requires TLS: connect with "
                             "sslmode=require (plaintext is accepted from loopback only)",
                             sqlstate="28000")
        params = dict(startup.params)
        unsupported = [k for k in params if k.startswith("_pq_.")]
        if startup.version & 0xFFFF or unsupported:
            client.write(pq.negotiate_protocol_version(0, unsupported))
            for k in unsupported:
                del params[k]
        user = params.get("user")
        if not user:
            raise ProxyError(ErrorKind.PROTOCOL, "no PostgreSQL user name specified in "
                             "startup packet", sqlstate="28000")
        r = route(params, sni=info.sni, domain=self.proxy.domain,
                  port_endpoint=info.port_endpoint, host_endpoint=info.host_endpoint)
        endpoint, pooled = r.endpoint_id, r.pooled
        self.at = r.at
        compute_params = compute_startup(r.params, pooled)
        if endpoint is None or info.websocket:
            endpoint, pooled = await self._cleartext_auth(user, endpoint, pooled)
        else:
            await self._scram_auth(endpoint, user, pooled, compute_params)
        self.endpoint = endpoint
        timer.cancel()
        try:
            await self._connect_and_relay(endpoint, pooled, compute_params)
        finally:
            if self.lease is not None:
                await self.proxy.backend.release(self.lease)

    async def _verifier(self, endpoint: str, user: str) -> ScramVerifier | None:
        # routed, not yet authenticated: where Neon checks the project's allowed_ips
        await check_client_address(self.proxy.backend, endpoint, self.info.address)
        try:
            secret = await self.proxy.backend.role_secret(endpoint, user)
        except NotFound:
            raise _endpoint_not_found(endpoint) from None
        except ProxyError:
            raise
        except Exception as e:
            logger.warning("role lookup for %s on %s failed: %s", user, endpoint, e)
            raise ProxyError(ErrorKind.CONTROL_PLANE, "could not look up the role; try again",
                             sqlstate="08006", retryable=True) from None
        if secret is None:
            return None
        try:
            return _parsed_verifier(secret)
        except InvalidInput:
            return None   # e.g. an md5 secret: the role cannot log in through the proxy

    async def _scram_auth(self, endpoint: str, user: str, pooled: bool,
                          compute_params: dict[str, str]) -> None:
        client = self.client
        verifier = await self._verifier(endpoint, user)
        if verifier is not None and self.at is None and not self._spare_waits(
                endpoint, pooled, compute_params, verifier.stored_key):
            # a known role of a running compute: connect there while the client proves
            # its password (see argon.proxy.early); nothing starts for a stranger
            self.early = self.proxy.early.start(endpoint, pooled, compute_params, verifier)
        cb = self.info.channel_binding if self.info.tls else None
        server = ScramServer(user, verifier, cb)
        client.write(pq.auth_sasl(mechanisms(cb)))
        kind, body = await client.read_message(pq.MAX_AUTH_MESSAGE_LEN)
        if kind != b"p":
            raise protocol_error(f"expected SASL response, got message type {kind!r}")
        mech, data = pq.parse_sasl_initial(body)
        client.write(pq.auth(pq.AUTH_SASL_CONTINUE, server.client_first(mech, data)))
        kind, body = await client.read_message(pq.MAX_AUTH_MESSAGE_LEN)
        if kind != b"p":
            raise protocol_error(f"expected SASL response, got message type {kind!r}")
        # sent with AuthenticationOk and the compute's answer (one TLS record), as Postgres
        # sends them
        self.auth_tail = pq.auth(pq.AUTH_SASL_FINAL, server.client_final(body))
        if verifier is not None and server.client_key is not None:
            self.scram_keys = ScramKeys(server.client_key, verifier)

    async def _cleartext_auth(self, user: str, endpoint: str | None,
                              pooled: bool) -> tuple[str, bool]:
        """Cleartext password: on the WebSocket path, and over TLS for the password form."""
        if endpoint is None and not (self.info.tls or self.info.websocket):
            raise no_endpoint_error(self.proxy.domain)
        self.client.write(pq.auth(pq.AUTH_CLEARTEXT))
        kind, body = await self.client.read_message(pq.MAX_AUTH_MESSAGE_LEN)
        if kind != b"p":
            raise protocol_error(f"expected password response, got message type {kind!r}")
        password = pq.parse_password(body)
        form = split_password_form(password)
        if form is not None:
            named, password = form
            named_id, named_pooled = split_pooler(named)
            if endpoint is not None and named_id != endpoint:
                raise ProxyError(ErrorKind.ROUTING, "the endpoint ID in the password does not "
                                 "match the host name or options", sqlstate="08004")
            endpoint, pooled = named_id, pooled or named_pooled
        if endpoint is None:
            raise no_endpoint_error(self.proxy.domain)
        verifier = await self._verifier(endpoint, user)
        if verifier is None:
            raise auth_failed(user)
        # the ClientKey both checks the password (its hash is the StoredKey) and logs in
        client_key = await shared_workers().run_quick(client_key_from_password, password,
                                                      verifier)
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key):
            raise auth_failed(user)
        self.scram_keys = ScramKeys(client_key, verifier)
        return endpoint, pooled

    async def _wake(self, endpoint: str, pooled: bool) -> ComputeAddress:
        self.proxy.metrics.wakes += 1
        try:
            if self.at is not None:
                if self.lease is not None:  # already made; a retry reuses it
                    await self.proxy.backend.release(self.lease)
                address, self.lease = await self.proxy.backend.wake_at(endpoint, *self.at)
                return address
            return await self.proxy.backend.wake(endpoint, pooled=pooled,
                                                 client=client_host(self.info.peer))
        except NotFound:
            raise _endpoint_not_found(endpoint) from None
        except InvalidInput as e:
            if self.at is None:   # e.g. settings Postgres refused: a start failure
                raise self._start_failed(endpoint, e) from None
            # a time-travel point outside the history window: the client's own input
            raise ProxyError(ErrorKind.ROUTING, e.message, sqlstate="22023") from None
        except EndpointDisabled:
            raise ProxyError(ErrorKind.CONTROL_PLANE, f"endpoint {endpoint} is disabled; "
                             "enable it to connect", sqlstate="08006") from None
        except ProxyError:
            raise
        except Exception as e:
            raise self._start_failed(endpoint, e) from None

    @staticmethod
    def _start_failed(endpoint: str, e: Exception) -> ProxyError:
        # A fixed text: the detail (log lines, paths) stays in Argon's log and in the
        # failed operation's error, never on the wire.
        logger.warning("waking endpoint %s failed: %s", endpoint,
                       getattr(e, "message", None) or repr(e))
        return ProxyError(ErrorKind.COMPUTE, f"could not start the compute for endpoint "
                          f"{endpoint}; try again, or see Argon's log", sqlstate="08006",
                          retryable=True)

    async def _connect(self, endpoint: str, pooled: bool) -> tuple[PgSide, ComputeAddress]:
        last: OSError | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            address = await self._wake(endpoint, pooled)
            try:
                side = await open_compute(address, lambda: PgSide("compute"))
                return side, address
            except OSError as e:   # suspended or killed since: forget the route, wake again
                last = e
                if self.at is None:
                    self.proxy.backend.route_failed(endpoint)
                if attempt:
                    await asyncio.sleep(0.05 * attempt)
        logger.warning("cannot connect to endpoint %s: %s", endpoint, last)
        raise ProxyError(ErrorKind.COMPUTE, f"could not connect to endpoint {endpoint}; try "
                         "again", sqlstate="08006", retryable=True)

    async def _connect_and_relay(self, endpoint: str, pooled: bool,
                                 params: dict[str, str]) -> None:
        client, proxy = self.client, self.proxy
        keys = self.scram_keys
        spare_at = (None if keys is None
                    else self._spare_key(endpoint, pooled, params, keys.verifier.stored_key))
        spare = await self._take_spare(endpoint, pooled, spare_at)
        early = None if spare is not None else await self._take_early(endpoint, pooled)
        pending: list[tuple[bytes, bytes]] = []    # messages already read from the compute
        if spare is not None:
            compute, address = spare.side, spare.address
            # as Postgres orders them: ParameterStatus..., BackendKeyData, ReadyForQuery
            pending = [*spare.reply[:-1], (b"K", spare.backend_key), spare.reply[-1]]
        elif early is not None:
            compute, address = early.side, early.address
            proxy.metrics.early_connections += 1
            if early.first is not None:
                pending = [early.first]
            else:
                await finish_scram(compute, early.scram, keys)
        else:
            compute, address = await self._connect(endpoint, pooled)
            compute.write(pq.startup_message(params))
        self.compute = compute
        # AuthenticationOk goes out with the compute's answer: one TLS record, not two
        out = bytearray(self.auth_tail + pq.auth(pq.AUTH_OK))
        self.auth_tail = b""
        reply: list[tuple[bytes, bytes]] = []      # kept with the login if it is reused
        backend_key = b""
        retried = False
        proxy_key: tuple[int, bytes] | None = None
        try:
            while True:
                if pending:
                    kind, body = pending.pop(0)
                else:
                    kind, body = await compute.read_message(MAX_COMPUTE_STARTUP_MESSAGE)
                if kind == b"R":
                    await answer_auth(compute, body, keys)
                    continue
                if kind == b"K":
                    backend_key = body
                    proxy_key = proxy.cancels.register(address, pq.int32(body), body[4:])
                    out += pq.backend_key_data(*proxy_key)
                    continue
                if kind == b"E" and not pooled and not retried and _too_many_clients(body) \
                        and proxy.spares.discard_backends(address):
                    # the compute's slots went to backends kept for later clients: free
                    # them and log in once more
                    retried = True
                    compute.close()
                    compute, address = await self._connect(endpoint, pooled)
                    self.compute = compute
                    compute.write(pq.startup_message(params))
                    continue
                if kind == b"E":   # e.g. database does not exist: Postgres' own error
                    client.write(bytes(out) + _startup_error(body))
                    self.outcome = "compute_error"
                    return
                out += pq.message(kind, body)
                reply.append((kind, body))
                if kind == b"Z":
                    break
            client.write(bytes(out))
            if pooled and spare_at is not None and keys is not None and (
                    spare is None or not proxy.spares.has(spare_at)):
                # a ready login for a concurrent client of this role (argon.proxy.spares);
                # a direct door keeps its sessions' own backends instead (no extra ones)
                proxy.spares.refill(spare_at, lambda: open_spare(address, params, keys))
            watch = (LoginWatch(resettable=not pooled) if spare_at is not None and backend_key
                     and isinstance(client, PgSide) else None)
            proxy.backend.session_started(endpoint)
            try:
                self._relay(compute, watch)
                waits = [client.done, compute.done]
                if watch is not None:
                    waits.append(watch.released)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                proxy.backend.session_ended(endpoint)
            if watch is not None and watch.released.done() and self._kept and spare_at:
                # the session left the login as fresh: the next client of the role gets it
                proxy.metrics.bytes_to_clients += compute.bytes_in
                compute.bytes_in = 0
                login_names = b""
                if not pooled:   # a compute backend: DISCARD ALL first
                    kept = await reset_backend(
                        compute, reply, spare.login_names if spare is not None else None)
                    if kept is None:
                        proxy.metrics.stale_backends += 1
                        return
                    reply, login_names = kept
                if proxy.spares.give_back(spare_at, Spare(compute, address, reply, backend_key,
                                                          not pooled, login_names)):
                    self.compute = None      # not closed by run()
                    if not pooled:
                        proxy.metrics.reset_backends += 1
                    else:
                        proxy.metrics.reused_logins += 1
        finally:
            if proxy_key is not None:
                proxy.cancels.unregister(*proxy_key)

    def _relay(self, compute: PgSide, watch: LoginWatch | None) -> None:
        client = self.client
        if watch is None:
            client.start_relay(compute.as_peer())
            compute.start_relay(client.as_peer())
            return
        assert isinstance(client, PgSide)   # the caller watches TCP clients only

        def release() -> None:
            # the client's close must not reach the login: take both sides off the relay
            # now, before its close (which may come in the same read) is handled
            paused = client.pausing_peer
            client.detach()
            self._kept = compute.detach() and not paused

        def unwatch() -> None:
            client.unwatch()
            compute.unwatch()
        watch.on_stop, watch.on_release = unwatch, release
        client.start_relay(compute.as_peer(), watch.from_client)
        compute.start_relay(client.as_peer(), watch.from_server)

    def _spare_waits(self, endpoint: str, pooled: bool, params: dict[str, str],
                     stored_key: bytes) -> bool:
        key = self._spare_key(endpoint, pooled, params, stored_key)
        return key is not None and self.proxy.spares.has(key)

    def _spare_key(self, endpoint: str, pooled: bool, params: dict[str, str],
                   stored_key: bytes) -> SpareKey | None:
        """Where this session's spare logins are kept: both doors of running computes
        (a time-travel compute is made for its one session); never for a replication
        connection (a walsender's state is not a session's)."""
        if (self.at is not None or _replication(params)
                or not (pooled or self.proxy.keep_direct_backends)):
            return None
        address = self.proxy.backend.known_route(endpoint, pooled)
        if address is None:
            return None
        return spare_key(address, params, stored_key)

    async def _take_spare(self, endpoint: str, pooled: bool,
                          key: SpareKey | None) -> Spare | None:
        if key is None:
            return None
        spare = self.proxy.spares.take(key)
        if spare is None:
            return None
        if await self._wake(endpoint, pooled) != spare.address:   # counts as activity
            spare.side.close()
            return None
        if spare.backend and not await fit_for_login(spare.side, spare.login_names):
            # a login of the role would read other settings now: so would its other
            # kept backends, made before the same change
            spare.side.close()
            self.proxy.spares.discard(key)
            self.proxy.metrics.stale_backends += 1
            return None
        self.proxy.metrics.spare_logins += 1
        return spare

    async def _take_early(self, endpoint: str, pooled: bool) -> EarlyCompute | None:
        """The early connection, if it is to where the compute is now."""
        attempt, self.early = self.early, None
        if attempt is None:
            return None
        early = await attempt.take()
        if early is None:
            return None
        address = await self._wake(endpoint, pooled)    # counts as activity, from memory
        if address != early.address or early.side.closed:
            early.side.close()
            return None
        return early

def client_host(peer: str) -> str:
    """The client's address without its port ("203.0.113.5:51234", "ws:203.0.113.5")."""
    if peer.startswith("ws:"):
        return peer[3:]
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return host.strip("[]")


# PgBouncer's refusals of startup parameters, completed as Neon's proxy completes them
UNSUPPORTED_PARAMETER_PREFIXES = ("unsupported startup parameter: ",
                                  "unsupported startup parameter in options: ")
UNSUPPORTED_PARAMETER_ADVICE = (
    ". Please use unpooled connection or remove this parameter from the startup package. "
    "More details: https://neon.tech/docs/connect/connection-errors"
    "#unsupported-startup-parameter")


def _replication(params: dict[str, str]) -> bool:
    """Whether the startup asks for a walsender (``replication=true|database``)."""
    value = params.get("replication", "").lower()
    return value not in ("", "false", "off", "no", "0")


def _too_many_clients(body: bytes) -> bool:
    return pq.parse_error_fields(body).get("C") == "53300"


def _startup_error(body: bytes) -> bytes:
    """The compute's ErrorResponse during startup, as the client should see it."""
    fields = pq.parse_error_fields(body)
    text = fields.get("M", "")
    if not text.startswith(UNSUPPORTED_PARAMETER_PREFIXES):
        return pq.message(b"E", body)
    return pq.error_response(ProxyError(
        ErrorKind.COMPUTE, text + UNSUPPORTED_PARAMETER_ADVICE,
        sqlstate=fields.get("C", "08P01"), severity=fields.get("S", "FATAL")))


def _endpoint_not_found(endpoint: str) -> ProxyError:
    return ProxyError(ErrorKind.NOT_FOUND, f'endpoint "{endpoint}" does not exist; check the '
                      "endpoint ID in the host name, options or password",
                      sqlstate="08004")
