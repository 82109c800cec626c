"""Replication settings in the rendered postgresql.conf, and the one-way project setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from argon.compute import ComputeSpec, Placement, render_config
from argon.compute.user_settings import check
from argon.control.logical_replication import ONE_WAY, turned_on
from argon.errors import InvalidInput
from argon.pg import PgInstall

PG18 = PgInstall(18, "18.6", Path("/opt/pg18/bin"), "embedded")
PG15 = PgInstall(15, "15.18", Path("/usr/lib/postgresql/15/bin"), "system")


def rendered(**kw: object) -> dict[str, str]:
    base: dict[str, object] = dict(endpoint_id="ep-cool-darkness-123456", timeline_id="tl",
                                   install=PG18, port=55001)
    base.update(kw)
    out = {}
    at = Placement(Path("/d/pg"), Path("/run/a/ep"), Path("/logs/ep.log"))
    for line in render_config(ComputeSpec(**base), at).splitlines():  # type: ignore[arg-type]
        if line and not line.startswith("#") and not line.startswith("include"):
            key, value = line.split(" = ", 1)
            out[key] = value.strip("'")
    return out


def test_wal_level_follows_the_project_setting() -> None:
    assert rendered()["wal_level"] == "replica"
    assert rendered(logical_replication=True)["wal_level"] == "logical"


def test_neon_sender_counts_and_the_slot_limits_on_every_compute() -> None:
    conf = rendered()
    assert (conf["max_wal_senders"], conf["max_replication_slots"]) == ("10", "10")
    assert conf["max_slot_wal_keep_size"] == "1GB"
    assert conf["wal_sender_timeout"] == "60s"
    assert conf["idle_replication_slot_timeout"] == "40h"
    assert "idle_replication_slot_timeout" not in rendered(install=PG15)  # 18+ only


@pytest.mark.parametrize("name", ["max_slot_wal_keep_size", "max_replication_slots",
                                  "wal_level", "idle_replication_slot_timeout"])
def test_endpoints_cannot_change_them(name: str) -> None:
    with pytest.raises(InvalidInput):
        check({name: "5"})


def test_the_setting_is_one_way() -> None:
    assert turned_on({}, {"enable_logical_replication": True}) is True
    assert turned_on({"enable_logical_replication": True},
                     {"enable_logical_replication": True}) is False
    assert turned_on({}, {"enable_logical_replication": False}) is False
    assert turned_on({"enable_logical_replication": True}, {"allowed_ips": None}) is False
    with pytest.raises(InvalidInput, match=ONE_WAY):
        turned_on({"enable_logical_replication": True}, {"enable_logical_replication": False})
