"""``argon.proxy.reuse.LoginWatch``: which sessions leave a login (a pooled door's PgBouncer
login, a direct door's backend to be reset) that the next client of the role may use, read
from the messages relayed either way."""

from __future__ import annotations

import asyncio

from argon.proxy import pq
from argon.proxy.reuse import TERMINATE, WATCH_BYTES, LoginWatch


def _query(sql: str) -> bytes:
    return pq.message(b"Q", sql.encode() + b"\0")


def _parse(name: str) -> bytes:
    return pq.message(b"P", name.encode() + b"\0SELECT 1\0\0\0")


SYNC = pq.message(b"S", b"")
IDLE = pq.message(b"Z", b"I")
IN_TX = pq.message(b"Z", b"T")
ROWS = (pq.message(b"T", b"\0\1a\0" + bytes(18)) + pq.message(b"D", b"\0\1\0\0\0\1" + b"1")
        + pq.message(b"C", b"SELECT 1\0"))


def _watched(steps: list[tuple[str, bytes]], *, resettable: bool = False
             ) -> tuple[LoginWatch, bytes, bool]:
    """Run ``steps`` ('c' client chunk, 's' server chunk) through a watch; returns it, all
    bytes forwarded to PgBouncer, and whether it gave up."""

    async def run() -> tuple[LoginWatch, bytes, bool]:
        watch = LoginWatch(resettable=resettable)
        stopped: list[bool] = []
        watch.on_stop = lambda: stopped.append(True)
        forwarded = b""
        for side, data in steps:
            if side == "c":
                forwarded += watch.from_client(data)
            else:
                assert watch.from_server(data) == data   # the client always gets it all
        return watch, forwarded, bool(stopped)

    return asyncio.run(run())


def test_a_clean_session_releases_its_login_and_keeps_the_terminate_back() -> None:
    watch, forwarded, stopped = _watched([
        ("c", _query("SELECT 1")), ("s", ROWS + IDLE), ("c", TERMINATE)])
    assert watch.released.done() and not stopped
    assert forwarded == _query("SELECT 1")    # PgBouncer never saw the Terminate


def test_the_extended_protocol_with_the_unnamed_statement_is_clean() -> None:
    client = _parse("") + pq.message(b"B", bytes(8)) + pq.message(b"E", bytes(5)) + SYNC
    watch, _, _ = _watched([("c", client), ("s", ROWS + IDLE), ("c", TERMINATE)])
    assert watch.released.done()


def test_messages_split_anywhere_across_chunks_are_followed() -> None:
    client, server = _query("SELECT 1") + _query("SELECT 2"), ROWS + IDLE + ROWS + IDLE
    for cut in range(1, len(server)):
        steps = [("c", client[:3]), ("c", client[3:]), ("s", server[:cut]),
                 ("s", server[cut:]), ("c", TERMINATE)]
        watch, forwarded, stopped = _watched(steps)
        assert watch.released.done() and not stopped, cut
        assert forwarded == client


NAMED = [("c", _parse("s1") + SYNC), ("s", pq.message(b"1", b"") + IDLE)]
PARAMETER = [("c", _query("SET TimeZone = 'UTC'")),
             ("s", pq.message(b"C", b"SET\0") + pq.message(b"S", b"TimeZone\0UTC\0") + IDLE)]
NOTIFICATION = [("c", _query("SELECT 1")),
                ("s", ROWS + IDLE + pq.message(b"A", bytes(4) + b"ch\0\0"))]
IN_TRANSACTION = [("c", _query("BEGIN")), ("s", pq.message(b"C", b"BEGIN\0") + IN_TX)]
UNANSWERED = [("c", _query("SELECT 1")), ("s", ROWS + IDLE),
              ("c", _query("SELECT pg_sleep(1)"))]
# Parse, Bind, Execute and no Sync: the statement may still be running, its transaction open
UNSYNCED = [("c", _query("SELECT 1")), ("s", ROWS + IDLE),
            ("c", _parse("") + pq.message(b"B", bytes(8)) + pq.message(b"E", bytes(5)))]


def test_state_a_reset_clears_is_fine_on_a_direct_door() -> None:
    # DISCARD ALL drops named statements, parameters and LISTENs before the next client
    for steps in (NAMED, PARAMETER, NOTIFICATION):
        watch, forwarded, stopped = _watched([*steps, ("c", TERMINATE)], resettable=True)
        assert watch.released.done() and not stopped, steps
        assert not forwarded.endswith(TERMINATE), steps


def test_a_session_that_did_not_end_idle_is_never_kept() -> None:
    for resettable in (False, True):
        for steps in (IN_TRANSACTION, UNANSWERED, UNSYNCED):
            watch, forwarded, _ = _watched([*steps, ("c", TERMINATE)], resettable=resettable)
            assert not watch.released.done(), (resettable, steps)
            assert forwarded.endswith(TERMINATE), (resettable, steps)


def test_state_left_with_pgbouncer_keeps_the_login_from_reuse() -> None:
    named = [("c", _parse("s1") + SYNC), ("s", pq.message(b"1", b"") + IDLE)]
    parameter = [("c", _query("SET TimeZone = 'UTC'")),
                 ("s", pq.message(b"C", b"SET\0") + pq.message(b"S", b"TimeZone\0UTC\0")
                  + IDLE)]
    notification = [("c", _query("SELECT 1")),
                     ("s", ROWS + IDLE + pq.message(b"A", bytes(4) + b"ch\0\0"))]
    in_transaction = [("c", _query("BEGIN")), ("s", pq.message(b"C", b"BEGIN\0") + IN_TX)]
    unanswered = [("c", _query("SELECT 1")), ("s", ROWS + IDLE),
                  ("c", _query("SELECT pg_sleep(1)"))]
    for steps in (named, parameter, notification, in_transaction, unanswered):
        watch, forwarded, _ = _watched([*steps, ("c", TERMINATE)])
        assert not watch.released.done(), steps
        assert forwarded.endswith(TERMINATE), steps   # PgBouncer closes the login


def test_a_long_session_is_not_watched_past_its_byte_budget() -> None:
    big = pq.message(b"D", b"\0\1" + bytes(WATCH_BYTES))
    watch, forwarded, stopped = _watched([
        ("c", _query("SELECT big")), ("s", big + pq.message(b"C", b"SELECT 1\0") + IDLE),
        ("c", TERMINATE)])
    assert stopped and not watch.released.done()
    assert forwarded.endswith(TERMINATE)


def test_a_terminate_with_bytes_after_it_is_not_trusted() -> None:
    watch, forwarded, _ = _watched([("c", TERMINATE + b"junk")])
    assert not watch.released.done() and forwarded == TERMINATE + b"junk"
