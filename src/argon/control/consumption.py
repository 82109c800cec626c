"""Consumption history: what Argon measures, in Neon's time frames.

Figures, per project and time frame (Neon's ``/consumption_history/projects``):

- ``active_time_seconds``: seconds the project's computes ran in the frame, summed over
  its endpoints (deleted ones included), from the compute runs the runtime records.
- ``compute_time_seconds``: the same seconds times each compute's size in CU (its
  autoscaling maximum, by which Argon sizes memory; Argon does not autoscale).
- ``written_data_bytes``: WAL written, the advance of each branch's LSN within the frame
  from the time/LSN samples storage keeps while a compute runs (every ~10 s and at stop).
- ``synthetic_storage_size_bytes``: bytes on disk of the project's branches as last
  measured (every minute); only the frame holding "now" has it, since Argon keeps no
  history of sizes; earlier frames report 0.

Per branch (Neon's ``/consumption_history/v2/branches``), ``compute_unit_seconds`` is the
branch's compute time; ``root_branch_bytes_month``/``child_branch_bytes_month`` are the
branch's current bytes, spread over the part of the frame that has passed, as a
fraction of a 30-day month, again for the frame holding "now" only.  Metrics Argon has no
measure of on one machine (network transfer, instant restore, extra branches, snapshot
storage) are 0.

Time frames follow Neon: ``from``/``to`` are rounded down to the granularity; hourly
frames reach back 168 hours, daily 60 days, monthly one year; ``to`` must be after
``from``; frames cover ``[from, to)``.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from argon.control import key_scope
from argon.control.context import ControlContext
from argon.control.organization import require_member
from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t

MONTH_SECONDS = 30 * 86_400
EARLIEST = datetime(2024, 3, 1, tzinfo=UTC)
V1_METRICS = ("active_time_seconds", "compute_time_seconds", "written_data_bytes",
              "synthetic_storage_size_bytes")
V1_OPTIONAL = ("data_storage_bytes_hour", "logical_size_bytes", "logical_size_bytes_hour")
V2_METRICS = ("compute_unit_seconds", "root_branch_bytes_month", "child_branch_bytes_month",
              "instant_restore_bytes_month", "public_network_transfer_bytes",
              "private_network_transfer_bytes", "extra_branches_month",
              "snapshot_storage_bytes_month")
V2_BRANCH_METRICS = V2_METRICS[:6]
PERIOD_PLAN = "self_hosted"
_PERIOD_NS = uuid.UUID("6f1d3a52-5d0e-4c43-9a55-8c0f2f6e0a11")


class RangeNotAcceptable(InvalidInput):
    """Neon answers 406 when ``from``/``to`` fall outside what a granularity covers."""

    code = "NOT_ACCEPTABLE"
    status = 406


class Granularity(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MONTHLY = "monthly"


_REACH = {Granularity.HOURLY: timedelta(hours=168), Granularity.DAILY: timedelta(days=60),
          Granularity.MONTHLY: timedelta(days=366)}
_REACH_TEXT = {Granularity.HOURLY: "168 hours", Granularity.DAILY: "60 days",
               Granularity.MONTHLY: "one year"}


# -- pure core ------------------------------------------------------------------------------


def round_down(when: datetime, g: Granularity) -> datetime:
    when = when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if g is Granularity.HOURLY:
        return when
    when = when.replace(hour=0)
    return when if g is Granularity.DAILY else when.replace(day=1)


def _next(when: datetime, g: Granularity) -> datetime:
    if g is Granularity.HOURLY:
        return when + timedelta(hours=1)
    if g is Granularity.DAILY:
        return when + timedelta(days=1)
    return when.replace(year=when.year + 1, month=1) if when.month == 12 \
        else when.replace(month=when.month + 1)


def frames(start: datetime, end: datetime, g: Granularity,
           now: datetime) -> list[tuple[datetime, datetime]]:
    """The time frames ``[from, to)`` asks for, after Neon's rounding and limits."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("'from' and 'to' need a time zone, e.g. 2026-12-01T00:00:00Z")
    try:
        lo, hi = round_down(start, g), end.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput("'from' or 'to' is out of range") from exc
    if hi <= lo:
        raise InvalidInput("'to' must be later than 'from'")
    if lo < EARLIEST:
        raise RangeNotAcceptable("the consumption history starts at 2024-03-01T00:00:00Z")
    if lo < round_down(now - _REACH[g], g):
        raise RangeNotAcceptable(f"{g.value} consumption reaches back {_REACH_TEXT[g]}; "
                                 f"choose a later 'from' or a coarser granularity")
    # Frames after the one holding now have nothing to report yet: stop there, which
    # also bounds the answer for a 'to' far in the future.
    hi = min(hi, _next(round_down(now, g), g))
    out = []
    cur = lo
    while cur < hi:
        nxt = _next(cur, g)
        out.append((cur, nxt))
        cur = nxt
    return out


@dataclass(frozen=True)
class Run:
    branch_id: str
    cu: float
    started_at: datetime
    stopped_at: datetime | None


def run_seconds(runs: Iterable[Run], lo: datetime, hi: datetime,
                now: datetime) -> tuple[float, float]:
    """(active seconds, CU seconds) of ``runs`` inside ``[lo, hi)``; open runs count to now."""
    active = cu_seconds = 0.0
    for r in runs:
        a = max(lo, r.started_at)
        b = min(hi, r.stopped_at or now, now)
        if b > a:
            secs = (b - a).total_seconds()
            active += secs
            cu_seconds += secs * r.cu
    return active, cu_seconds


def lsn_advance(samples: Sequence[tuple[datetime, int]], lo: datetime, hi: datetime) -> int:
    """Bytes of WAL a timeline wrote in ``[lo, hi)``: the LSN last sampled before ``hi``
    minus the one last sampled before ``lo`` (the first sample when none was)."""
    if not samples:
        return 0
    times = [s[0] for s in samples]

    def at(when: datetime) -> int:
        i = bisect_right(times, when)
        return int(samples[max(i - 1, 0)][1])

    return max(at(hi - timedelta(microseconds=1)) - at(lo - timedelta(microseconds=1)), 0)


def period_id(project_id: str) -> str:
    """One stable billing period per project: a self-hosted install has no billing."""
    return str(uuid.uuid5(_PERIOD_NS, project_id))


def metric_list(requested: Sequence[str] | None, allowed: Sequence[str],
                default: Sequence[str] | None) -> list[str]:
    """Neon's ``metrics`` parameter: repeated or comma-separated names from ``allowed``."""
    names = [n.strip() for item in (requested or []) for n in item.split(",") if n.strip()]
    if not names:
        if default is None:
            raise InvalidInput(f"'metrics' is required; one or more of {', '.join(allowed)}")
        return list(default)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InvalidInput(f"unknown metric {unknown[0]!r}; supported: {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def id_list(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for item in (values or []) for v in item.split(",") if v.strip()]


# -- service --------------------------------------------------------------------------------


class ConsumptionService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def _projects(self, project_ids: list[str], cursor: str | None,
                  limit: int) -> tuple[list[Any], str | None]:
        q = select(t.projects.c.id, t.projects.c.created_at).order_by(
            t.projects.c.created_at.desc(), t.projects.c.id)
        for pid in project_ids:
            key_scope.check_project(pid)   # a project-scoped key: its project only
        only = key_scope.scoped_project()
        if only is not None:
            q = q.where(t.projects.c.id == only)
        with self.ctx.tx() as conn:
            if project_ids:
                rows = conn.execute(q.where(t.projects.c.id.in_(project_ids))).all()
                missing = set(project_ids) - {r.id for r in rows}
                if missing:
                    raise NotFound(f"project {min(missing)!r} not found")
            else:
                rows = conn.execute(q).all()
        if cursor:
            ids = [r.id for r in rows]
            if cursor not in ids:
                raise InvalidInput(f"cursor {cursor!r} does not name a project of this list")
            rows = rows[ids.index(cursor) + 1:]
        page = list(rows[:limit])
        nxt = str(page[-1].id) if len(rows) > limit else None
        return page, nxt

    def _facts(self, project_id: str) -> tuple[list[Any], list[Run]]:
        with self.ctx.tx() as conn:
            branches = list(conn.execute(select(
                t.branches.c.id, t.branches.c.timeline_id, t.branches.c.parent_id).where(
                t.branches.c.project_id == project_id)).all())
            runs = [Run(r.branch_id, r.cu, r.started_at, r.stopped_at)
                    for r in conn.execute(select(t.compute_runs).where(
                        t.compute_runs.c.project_id == project_id))]
        return branches, runs

    def _period(self, project_id: str, created_at: datetime,
                consumption: list[dict[str, Any]]) -> dict[str, Any]:
        return {"period_id": period_id(project_id), "period_plan": PERIOD_PLAN,
                "period_start": created_at, "consumption": consumption}

    def per_project(self, *, start: datetime, end: datetime, granularity: Granularity,
                    project_ids: Sequence[str] | None = None, cursor: str | None = None,
                    limit: int = 10, metrics: Sequence[str] | None = None,
                    include_v1_metrics: bool = False, org_id: str | None = None,
                    ) -> tuple[list[dict[str, Any]], str | None]:
        """Neon's legacy ``getConsumptionHistoryPerProject`` answer and the next cursor."""
        require_member(org_id)
        now = self.ctx.clock()
        spans = frames(start, end, granularity, now)
        # The deprecated include_v1_metrics adds data_storage_bytes_hour unless metrics
        # names the figures itself (Neon ignores it then).
        default = (*V1_METRICS, "data_storage_bytes_hour") if include_v1_metrics \
            else V1_METRICS
        wanted = metric_list(metrics, V1_METRICS + V1_OPTIONAL, default)
        page, nxt = self._projects(id_list(project_ids), cursor, limit)
        out = []
        for p in page:
            branches, runs = self._facts(p.id)
            samples = [self.ctx.storage.samples(b.timeline_id) for b in branches]
            size = sum(self.ctx.sizes.get(b.timeline_id, 0) for b in branches)
            rows = []
            for lo, hi in spans:
                active, cu_secs = run_seconds(runs, lo, hi, now)
                current = lo <= now < hi
                figures = {
                    "active_time_seconds": round(active),
                    "compute_time_seconds": round(cu_secs),
                    "written_data_bytes": sum(lsn_advance(s, lo, hi) for s in samples),
                    "synthetic_storage_size_bytes": size if current else 0,
                    "logical_size_bytes": size if current else 0,
                    "data_storage_bytes_hour": _byte_hours(size, lo, now) if current else 0,
                    "logical_size_bytes_hour": _byte_hours(size, lo, now) if current else 0,
                }
                row: dict[str, Any] = {"timeframe_start": lo, "timeframe_end": hi}
                # Neon's schema requires the four base figures in every frame.
                row.update({k: figures[k] for k in V1_METRICS})
                row.update({k: figures[k] for k in wanted})
                rows.append(row)
            out.append({"project_id": p.id, "periods": [self._period(p.id, p.created_at, rows)]})
        return out, nxt

    def _branch_metrics(self, branch: Any, runs: list[Run], lo: datetime, hi: datetime,
                        now: datetime, wanted: list[str]) -> list[dict[str, Any]]:
        _, cu_secs = run_seconds([r for r in runs if r.branch_id == branch.id], lo, hi, now)
        size = self.ctx.sizes.get(branch.timeline_id, 0) if lo <= now < hi else 0
        month = round(size * (min(hi, now) - lo).total_seconds() / MONTH_SECONDS)
        values = {"compute_unit_seconds": round(cu_secs),
                  "root_branch_bytes_month": month if branch.parent_id is None else 0,
                  "child_branch_bytes_month": month if branch.parent_id is not None else 0}
        return [{"metric_name": m, "value": values.get(m, 0)} for m in wanted]

    def per_project_v2(self, *, start: datetime, end: datetime, granularity: Granularity,
                       metrics: Sequence[str] | None, project_ids: Sequence[str] | None = None,
                       cursor: str | None = None, limit: int = 10,
                       org_id: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Neon's ``getConsumptionHistoryPerProjectV2``: the branches' metrics summed."""
        require_member(org_id)
        now = self.ctx.clock()
        spans = frames(start, end, granularity, now)
        wanted = metric_list(metrics, V2_METRICS, None)
        page, nxt = self._projects(id_list(project_ids), cursor, limit)
        out = []
        for p in page:
            branches, runs = self._facts(p.id)
            rows = []
            for lo, hi in spans:
                totals = dict.fromkeys(wanted, 0)
                for b in branches:
                    for m in self._branch_metrics(b, runs, lo, hi, now, wanted):
                        totals[m["metric_name"]] += m["value"]
                if "extra_branches_month" in totals:
                    totals["extra_branches_month"] = 0   # no plan allowance to exceed
                rows.append({"timeframe_start": lo, "timeframe_end": hi,
                             "metrics": [{"metric_name": k, "value": v}
                                         for k, v in totals.items()]})
            out.append({"project_id": p.id, "periods": [self._period(p.id, p.created_at, rows)]})
        return out, nxt

    def per_branch_v2(self, *, start: datetime, end: datetime, granularity: Granularity,
                      metrics: Sequence[str] | None, project_ids: Sequence[str],
                      branch_ids: Sequence[str] | None = None, cursor: str | None = None,
                      limit: int = 10, org_id: str | None = None,
                      ) -> tuple[list[dict[str, Any]], str | None]:
        """Neon's ``getConsumptionHistoryPerBranchV2``: one entry per branch."""
        require_member(org_id)
        now = self.ctx.clock()
        spans = frames(start, end, granularity, now)
        wanted = metric_list(metrics, V2_BRANCH_METRICS, None)
        pids = id_list(project_ids)
        if not pids:
            raise InvalidInput("'project_ids' is required: one to 100 project ids")
        only = set(id_list(branch_ids))
        projects, _ = self._projects(pids, None, len(pids))
        entries = []
        for p in projects:
            branches, runs = self._facts(p.id)
            for b in branches:
                if only and b.id not in only:
                    continue
                rows = [{"timeframe_start": lo, "timeframe_end": hi,
                         "metrics": self._branch_metrics(b, runs, lo, hi, now, wanted)}
                        for lo, hi in spans]
                entries.append({"project_id": p.id, "branch_id": b.id,
                                "periods": [self._period(p.id, p.created_at, rows)]})
        keys = [f"{e['project_id']}/{e['branch_id']}" for e in entries]
        if cursor:
            if cursor not in keys:
                raise InvalidInput(f"cursor {cursor!r} does not name a branch of this list")
            entries = entries[keys.index(cursor) + 1:]
            keys = keys[keys.index(cursor) + 1:]
        nxt = keys[limit - 1] if len(entries) > limit else None
        return entries[:limit], nxt


def _byte_hours(size: int, lo: datetime, now: datetime) -> int:
    return round(size * max((now - lo).total_seconds(), 0) / 3600)
