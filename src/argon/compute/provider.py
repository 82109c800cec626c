"""The compute room's seams: what control needs from whatever runs computes and poolers.

Control holds a ``ComputeProvider`` and a ``PoolerProvider`` and nothing else of this
room's machinery.  It hands specs that name a timeline (``ComputeSpec``) and gets back
where to connect (``ComputeAddress``): a unix socket directory today, a host:port for a
provider whose computes run elsewhere.  Today's implementations are local:
``ComputeManager`` (``process.py``, postmasters on this host) and ``PoolerManager``
(``pooler.py``, PgBouncer beside them).  A Kubernetes provider would map ``start`` to a
pod on a volume cloned from the timeline's snapshot and answer the pod's address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import psycopg

from argon.compute.pooler import PoolerSpec
from argon.compute.spec import ComputeAddress, ComputeProcess, ComputeSpec, ComputeState


class ComputeProvider(Protocol):
    start_timeout: float     # how long a start may take (a replica's catch-up waits as long)

    def reserve_address(self, spec: ComputeSpec) -> ComputeSpec: ...
    # the spec with its address settled before the start (a pooled wake starts the
    # pooler beside the compute, pointed at ``expected_address``)

    def start(self, spec: ComputeSpec,
              ready: Callable[[ComputeAddress], None] | None = None) -> ComputeAddress: ...
    # start (idempotent: a running compute is answered as it is) and return once it
    # takes sessions; the address returned is the one everything else then uses.
    # ``ready`` may be told that address earlier, as soon as client roles can log in
    # (Argon's own checks still to come): a wake's client connects meanwhile

    def stop(self, spec: ComputeSpec, mode: str = "fast") -> None: ...
    # Postgres' shutdown mode (smart, fast, immediate); idempotent

    def state(self, spec: ComputeSpec) -> ComputeState: ...

    def pid(self, spec: ComputeSpec) -> int | None: ...
    # the running postmaster's pid (a local notion: any provider answers not-None
    # exactly while the compute runs)

    def process(self, spec: ComputeSpec) -> ComputeProcess | None: ...

    def address(self, spec: ComputeSpec) -> ComputeAddress | None: ...
    # where the running compute takes connections; None when it does not run

    def expected_address(self, spec: ComputeSpec) -> ComputeAddress | None: ...
    # where it will listen once started with this spec (a replica's primary_conninfo
    # names a stopped primary's); None when not known yet

    def connect(self, spec: ComputeSpec, dbname: str = "postgres", user: str | None = None,
                autocommit: bool = True) -> psycopg.Connection: ...
    # Argon's own session (cloud_admin with the spec's admin_password)

    def client_sessions(self, spec: ComputeSpec) -> int: ...
    # client backends other than Argon's own (idleness)


class PoolerProvider(Protocol):
    """PgBouncer (or any pooler) in front of a compute, at a pooled address."""

    def start(self, spec: PoolerSpec) -> ComputeAddress: ...
    # start, or reload a running one whose upstream moved; returns the pooled address

    def stop(self, spec: PoolerSpec) -> None: ...

    def pid(self, spec: PoolerSpec) -> int | None: ...

    def address(self, spec: PoolerSpec) -> ComputeAddress | None: ...
    # the running pooler's address; None when it does not run
