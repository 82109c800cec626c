"""The bucket client against moto's S3 server: what callers rely on, and its errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from argon.storage.objectstore import ObjectStoreError
from argon.storage.objectstore.bucket import Bucket, bucket_env, parse_url
from tests.fixtures.object_store import ObjectStore


def test_files_and_bytes_round_trip_under_the_prefix(object_store: ObjectStore,
                                                     tmp_path: Path) -> None:
    b = object_store.bucket()
    src = tmp_path / "seg"
    src.write_bytes(os.urandom(3 << 20))
    b.put_file("timelines/t/wal/A", src)
    b.put_bytes("timelines/t/wal/B", b"bee")
    assert [o.key for o in b.list("timelines/t/")] == ["timelines/t/wal/A", "timelines/t/wal/B"]
    assert b.head("timelines/t/wal/A").size == 3 << 20  # type: ignore[union-attr]
    assert b.head("nothing") is None and not b.exists("nothing")
    dest = tmp_path / "sub" / "copy"
    b.get_file("timelines/t/wal/A", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert not [p for p in dest.parent.iterdir() if p.name != "copy"]   # no temp left
    assert b.get_bytes("timelines/t/wal/B") == b"bee"
    # the prefix is Argon's: another prefix in the same bucket sees nothing of it
    other = Bucket(f"s3://{object_store.bucket_name}/elsewhere", object_store.env)
    assert other.list("") == []
    b.delete_many(["timelines/t/wal/A", "timelines/t/wal/B", "never-there"])
    assert b.list("") == []


def test_create_only_refuses_an_existing_key(object_store: ObjectStore, tmp_path: Path) -> None:
    b = object_store.bucket()
    b.put_bytes("k", b"1", create_only=True)
    with pytest.raises(ObjectStoreError) as err:
        b.put_bytes("k", b"2", create_only=True)
    assert err.value.kind == "conflict"
    f = tmp_path / "f"
    f.write_bytes(b"3")
    with pytest.raises(ObjectStoreError):
        b.put_file("k", f, create_only=True)
    assert b.get_bytes("k") == b"1"


def test_a_missing_object_leaves_no_partial_file(object_store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectStoreError) as err:
        object_store.bucket().get_file("absent", tmp_path / "dest")
    assert err.value.kind == "not_found"
    assert list(tmp_path.iterdir()) == []


def test_errors_say_what_to_check_and_never_the_secret(object_store: ObjectStore) -> None:
    env = object_store.env
    missing = Bucket("s3://no-such-bucket-anywhere/x", env)
    with pytest.raises(ObjectStoreError) as err:
        missing.check()
    assert err.value.kind == "not_found" and "does not exist" in err.value.message
    object_store.stop()
    with pytest.raises(ObjectStoreError) as err:
        object_store.bucket().put_bytes("k", b"x")
    e = err.value
    assert e.kind == "unreachable" and "AWS_ENDPOINT_URL" in e.message
    assert env["AWS_SECRET_ACCESS_KEY"] not in e.message + e.detail


def test_address_and_environment() -> None:
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_url("s3://bucket") == ("bucket", "")
    env = {"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "s", "HOME": "/root"}
    assert bucket_env(env) == {"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "s"}
