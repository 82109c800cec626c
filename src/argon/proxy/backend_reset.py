"""A direct door's backend made fit for the next client of its role: ``DISCARD ALL``, and
a check that a fresh login would start the same way.

A new Postgres backend costs the compute a fork, its catalog caches and a SCRAM exchange
(about 4.5 ms of CPU here), more than TLS and SCRAM cost the proxy.  So, as PgBouncer's
session mode does, a direct session that ended cleanly (``argon.proxy.reuse``) leaves its
backend to the next client of the same role, database and startup parameters, after
``DISCARD ALL``: temporary tables, prepared statements, cursors, advisory locks, LISTEN,
plans, sequence state and every ``SET`` (``SET ROLE`` and ``SET SESSION AUTHORIZATION``
too) go back to how the login left them.

``DISCARD ALL`` restores the settings the backend read at its login, and a fresh login
would read them again.  So before a client gets a kept backend the proxy asks it whether
a login now would start the same way (``LOGIN_CHECK_SQL``, one query on the compute's
socket, ~0.4 ms): every setting ``pg_db_role_setting`` gives this role in this database,
in Postgres's order of precedence, has that value in the backend, the backend took no
other from there at its login (``LOGIN_SOURCES_SQL``, read once, at its first reset), and
the login would pass the role's LOGIN and VALID UNTIL, the database's ALLOW CONNECTIONS
and the CONNECT privilege.  It compares the backend's state
with the catalog's, so a change by anyone at any time since the login (``ALTER DATABASE
... SET`` on another door) is seen.  A value Postgres shows in another form than it was
written in ('1024kB' as '1MB') reads as a change: the backend is closed, never reused
wrongly.

What a reset cannot give back, and the next client of the role may notice: the backend's
pid and ``backend_start``; libraries loaded with ``LOAD``; connections that ``dblink`` or
``postgres_fdw`` keep open in the backend.  A password changed with SQL reaches the proxy
with Argon's role sync (``control.reconciler.SQL_ROLE_SYNC_SECONDS``); until then a kept
backend, like the proxy itself, still takes the old one (``docs/security.md``).
"""

from __future__ import annotations

import asyncio
import logging

from argon.pg.sessions import KEPT_LOGIN_MARKER
from argon.proxy import pq
from argon.proxy.errors import ProxyError
from argon.proxy.relay import PgSide

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = 2.0
MAX_ANSWER_MESSAGE = 64 * 1024

# The queries lead with the marker: a kept backend is idle with one of them as its last
# query, which keeps it out of the compute's session count (``client_sessions``).
RESET_SQL = KEPT_LOGIN_MARKER + " DISCARD ALL"
_SOURCES = "('database', 'user', 'database user', 'global')"
# The settings a backend took from pg_db_role_setting at its login (after DISCARD ALL its
# values are those again): read once per backend, at its first reset.
LOGIN_SOURCES_SQL = KEPT_LOGIN_MARKER + f"""
SELECT coalesce(string_agg(lower(name), ',' ORDER BY lower(name)), '')
  FROM pg_catalog.pg_settings WHERE source IN {_SOURCES}"""
# Readable by any role: 't' if a login of session_user to this database now would pass
# its checks and set what this backend has of pg_db_role_setting's settings (in Postgres's
# order of precedence), then ':' and the names of those settings, to compare with the
# backend's LOGIN_SOURCES_SQL.
LOGIN_CHECK_SQL = KEPT_LOGIN_MARKER + """
WITH role AS (SELECT oid, rolcanlogin, rolvaliduntil FROM pg_catalog.pg_roles
               WHERE rolname = session_user),
     db AS (SELECT oid, datallowconn FROM pg_catalog.pg_database
             WHERE datname = current_database()),
     wanted AS (
       SELECT DISTINCT ON (lower(split_part(item, '=', 1)))
              lower(split_part(item, '=', 1)) AS name,
              substr(item, strpos(item, '=') + 1) AS value
         FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS item
        WHERE s.setdatabase IN (0, (SELECT oid FROM db))
          AND s.setrole IN (0, (SELECT oid FROM role))
        ORDER BY lower(split_part(item, '=', 1)), s.setrole = 0, s.setdatabase = 0)
SELECT CASE WHEN coalesce((SELECT rolcanlogin AND coalesce(rolvaliduntil > now(), true)
                             FROM role), false)
             AND coalesce((SELECT datallowconn FROM db), false)
             AND pg_catalog.has_database_privilege(current_database(), 'CONNECT')
             AND NOT EXISTS (SELECT 1 FROM wanted
                              WHERE current_setting(name, true) IS DISTINCT FROM value)
            THEN 't:' ELSE 'f:' END
       || coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM wanted), '')"""

RESET_QUERY = pq.message(b"Q", RESET_SQL.encode() + b"\0")
LOGIN_SOURCES_QUERY = pq.message(b"Q", LOGIN_SOURCES_SQL.encode() + b"\0")
LOGIN_CHECK_QUERY = pq.message(b"Q", LOGIN_CHECK_SQL.encode() + b"\0")


async def fit_for_login(side: PgSide, login_names: bytes) -> bool:
    """Whether an idle kept backend (which took ``login_names`` from pg_db_role_setting at
    its login) starts as a new login of its role would now."""
    side.write(LOGIN_CHECK_QUERY)
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            answer = await _answer(side, {})
    except (OSError, TimeoutError, ValueError, ProxyError) as e:
        logger.debug("login check of a kept backend failed: %s", e)
        return False
    if answer != b"t:" + login_names:
        logger.debug("a kept backend's login settings changed since its login; closing it")
        return False
    return True


async def reset_backend(side: PgSide, reply: list[tuple[bytes, bytes]],
                        login_names: bytes | None
                        ) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """``DISCARD ALL`` on a backend a client has left; the startup reply to give its next
    client (with any ParameterStatus the reset sent) and the settings it took at login
    (read now if ``login_names`` is None), or None if it must be closed."""
    side.write(RESET_QUERY if login_names is not None else RESET_QUERY + LOGIN_SOURCES_QUERY)
    reported: dict[bytes, bytes] = {}
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            await _answer(side, reported)
            if login_names is None:
                login_names = await _answer(side, reported)
    except (OSError, TimeoutError, ValueError, ProxyError) as e:
        logger.debug("backend reset failed: %s", e)
        return None
    if not reported:
        return reply, login_names
    out = []
    for kind, body in reply:
        if kind == b"S":
            name = body.split(b"\0", 1)[0]
            body = reported.pop(name, body)
        out.append((kind, body))
    if reported:   # a parameter the login never reported: not as a fresh login would be
        return None
    return out, login_names


async def _answer(side: PgSide, reported: dict[bytes, bytes]) -> bytes:
    """Read the answer to one simple query: its last DataRow's first value (b"" if none),
    ParameterStatus bodies into ``reported``.  ValueError if it failed or the backend is
    not left idle."""
    value = b""
    while True:
        kind, body = await side.read_message(MAX_ANSWER_MESSAGE)
        if kind == b"D":
            value = _first_column(body)
        elif kind == b"S":
            reported[body.split(b"\0", 1)[0]] = body
        elif kind == b"E":
            raise ValueError(pq.parse_error_fields(body).get("M", "error"))
        elif kind == b"Z":
            if body != b"I":
                raise ValueError(f"not idle after the query ({body!r})")
            return value
        elif kind not in b"CTNA":   # completions, row description, notices, notifications
            raise ValueError(f"unexpected message {kind!r} from a kept backend")


def _first_column(body: bytes) -> bytes:
    if len(body) < 6 or int.from_bytes(body[:2], "big") < 1:
        raise ValueError("an empty row")
    length = int.from_bytes(body[2:6], "big", signed=True)
    if length < 0:
        raise ValueError("a null value")
    return body[6:6 + length]
