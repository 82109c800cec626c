"""The endpoint ``pg_settings`` allow-list: names Neon lets users set, values in range."""

from __future__ import annotations

import pytest

from argon.compute.user_settings import ALLOWED, check, check_one
from argon.control import validation
from argon.errors import InvalidInput

# Finding 3 of issue 8: each was accepted with 200 (or refused only at the next start).
REFUSED_NAMES = ["external_pid_file", "data_directory", "shared_preload_libraries",
                 "dynamic_library_path", "ssl_passphrase_command", "ident_file", "port",
                 "listen_addresses", "archive_command", "hba_file", "config_file",
                 "unix_socket_directories", "restore_command", "recovery_target_lsn",
                 "local_preload_libraries", "session_preload_libraries", "max_connections",
                 "shared_buffers", "wal_level", "ssl", "ssl_key_file", "log_directory",
                 "logging_collector", "archive_library", "allow_alter_system", "zz.custom",
                 "pg_stat_statements.track", "no_such_setting", "work mem", ""]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_settings_off_the_list_are_refused_by_name(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validation.pg_settings({name: "1"})
    assert repr(name) in info.value.message and "cannot be set per endpoint" in info.value.message
    assert "work_mem" in info.value.message  # says what may be set


@pytest.mark.parametrize(("name", "value"), [
    ("work_mem", "64MB"), ("work_mem", "65536"), ("work_mem", "64kB"), ("work_mem", "2GB"),
    ("maintenance_work_mem", "1GB"), ("temp_buffers", "8MB"), ("temp_buffers", "1024"),
    ("statement_timeout", "0"), ("statement_timeout", "30s"), ("statement_timeout", "5min"),
    ("lock_timeout", "1500ms"), ("idle_in_transaction_session_timeout", "1h"),
    ("idle_session_timeout", "1d"), ("log_min_duration_statement", "-1"),
    ("default_statistics_target", "100"), ("random_page_cost", "1.1"),
    ("seq_page_cost", "1"), ("effective_io_concurrency", "200"),
    ("max_parallel_workers_per_gather", "4"), ("jit", "off"), ("jit", "TRUE"),
    ("timezone", "UTC"), ("timezone", "Europe/Paris"), ("datestyle", "ISO, MDY"),
    ("search_path", '"$user", public'), ("search_path", "app,public"),
    ("default_transaction_isolation", "repeatable read"), ("synchronous_commit", "local"),
    ("hash_mem_multiplier", "2.0"), ("WORK_MEM", "8MB"), ("application_name", "it's me"),
])
def test_allowed_values_pass(name: str, value: str) -> None:
    assert check_one(name, value) == name.lower()


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("work_mem", "lots", "a size from 64kB to"),
    ("work_mem", "32kB", "a size from 64kB"),
    ("work_mem", "3TB", "a size from 64kB"),
    ("work_mem", "64 parsecs", "a size"),
    ("statement_timeout", "-5", "a duration from 0"),
    ("statement_timeout", "10 years", "a duration"),
    ("default_statistics_target", "0", "an integer from 1 to 10000"),
    ("default_statistics_target", "10001", "an integer from 1 to 10000"),
    ("default_statistics_target", "10MB", "an integer"),
    ("random_page_cost", "-1", "a number from 0"),
    ("random_page_cost", "cheap", "a number"),
    ("jit", "maybe", "on or off"),
    ("default_transaction_isolation", "chaos", "one of 'serializable'"),
    ("timezone", "Mars/Olympus_Mons", "a time zone name"),
    ("timezone", "../../etc/passwd", "a time zone name"),
    ("datestyle", "whenever", "an output format"),
    ("search_path", "public; drop table x", "schema names"),
    ("work_mem", "4MB\nport = 1", "without control characters"),
])
def test_bad_values_name_the_setting_and_the_range(name: str, value: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validation.pg_settings({name: value})
    assert repr(name) in info.value.message and expected in info.value.message


def test_validation_lowercases_names_and_stringifies_numbers() -> None:
    assert validation.pg_settings({"Work_Mem": "8MB", "default_statistics_target": 200}) == {
        "work_mem": "8MB", "default_statistics_target": "200"}
    with pytest.raises(InvalidInput, match="must be a string"):
        validation.pg_settings({"jit": True})  # type: ignore[dict-item]


def test_every_allowed_setting_describes_its_values() -> None:
    for name, rule in ALLOWED.items():
        assert rule.describe(), name
    assert check({}) == {}
