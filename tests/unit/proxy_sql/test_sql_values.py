"""Value conversion for SQL over HTTP, checked against the cases in Neon's json.rs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from argon.proxy.serverless.sql_pool import begin_statement
from argon.proxy.serverless.sql_values import (
    BUILTIN_KINDS,
    Scalar,
    TypeKind,
    ValueError_,
    converter,
    json_to_pg_params,
    kind_from_pg_type,
    object_keys,
    parse_command_tag,
    parse_pg_array,
    row_json,
)


def conv(text: str, oid: int, raw: bool = False) -> Any:
    return json.loads(converter(BUILTIN_KINDS[oid], raw)(text))


def test_params_become_postgres_text() -> None:
    assert json_to_pg_params([True, False, 42, 2.5, 'foo"', None]) == [
        "true", "false", "42", "2.5", 'foo"', None]
    assert json_to_pg_params([{"a": [1, None]}]) == ['{"a":[1,null]}']


def test_array_params_become_array_literals() -> None:
    assert json_to_pg_params([[True, False, None, "NULL", 42, "foo", 'bar"-\\']]) == [
        '{true,false,NULL,"NULL",42,"foo","bar\\"-\\\\"}']
    assert json_to_pg_params([[[True, False], [None, 42], ["foo", 'bar"-\\']]]) == [
        '{{true,false},{NULL,42},{"foo","bar\\"-\\\\"}}']
    assert json_to_pg_params([[{"foo": 1}, {"bar": 2}]]) == [
        '{"{\\"foo\\":1}","{\\"bar\\":2}"}']
    assert json_to_pg_params([[]]) == ["{}"]


@pytest.mark.parametrize(("text", "oid", "expected"), [
    ("foo", 25, "foo"), ("42", 23, 42), ("42", 21, 42), ("42", 20, "42"),
    ("42.42", 701, 42.42), ("42.42", 700, 42.42), ("NaN", 700, "NaN"),
    ("Infinity", 701, "Infinity"), ("-Infinity", 700, "-Infinity"), ("1e+300", 701, 1e300),
    ("t", 16, True), ("f", 16, False), ("12.50", 1700, "12.50"),
    ('{"s":"str","n":42,"f":4.2,"a":[null,3,"a"]}', 3802,
     {"s": "str", "n": 42, "f": 4.2, "a": [None, 3, "a"]}),
    ("2024-01-02 03:04:05+00", 1184, "2024-01-02 03:04:05+00"), ("\\x00ff", 17, "\\x00ff"),
])
def test_scalars(text: str, oid: int, expected: Any) -> None:
    assert conv(text, oid) == expected


def test_raw_text_keeps_strings() -> None:
    assert conv("42", 23, raw=True) == "42" and conv("t", 16, raw=True) == "t"
    assert conv('{"a": 1}', 3802, raw=True) == '{"a": 1}'
    assert conv("{1,2}", 1007, raw=True) == "{1,2}"


def test_json_passes_through_verbatim() -> None:
    assert converter(BUILTIN_KINDS[114], False)('{"b": 1,  "a": 2}') == '{"b": 1,  "a": 2}'


def test_bad_numbers_are_conversion_errors() -> None:
    with pytest.raises(ValueError_):
        conv("abc", 23)
    with pytest.raises(ValueError_):
        conv("1x", 701)


def _arr(text: str, scalar: Scalar) -> Any:
    return json.loads(converter(TypeKind(scalar, is_array=True), False)(text))


def test_text_arrays() -> None:
    assert _arr(r'{"aa\"\\\,a",cha,"bbbb"}', Scalar.TEXT) == ['aa"\\,a', "cha", "bbbb"]
    assert _arr('{{"foo","bar"},{"bee","bop"}}', Scalar.TEXT) == [["foo", "bar"], ["bee", "bop"]]
    assert _arr('{{{{"foo",NULL,"bop",bup}}}}', Scalar.TEXT) == [[[["foo", None, "bop", "bup"]]]]
    assert _arr('{{"1",2,3},{4,NULL,6},{NULL,NULL,NULL}}', Scalar.TEXT) == [
        ["1", "2", "3"], ["4", None, "6"], [None, None, None]]
    assert _arr('{"NULL",NULL,""}', Scalar.TEXT) == ["NULL", None, ""]
    assert _arr("{ a , b }", Scalar.TEXT) == ["a", "b"]


def test_bool_and_number_arrays() -> None:
    assert _arr("{t,f,t}", Scalar.BOOL) == [True, False, True]
    assert _arr("{{t,NULL},{NULL,f}}", Scalar.BOOL) == [[True, None], [None, False]]
    assert _arr("{1,2,3}", Scalar.INT) == [1, 2, 3]
    assert json.loads(converter(BUILTIN_KINDS[1016], False)("{1,2,3}")) == ["1", "2", "3"]
    assert _arr("{1.1,2.2,3.3}", Scalar.FLOAT) == [1.1, 2.2, 3.3]
    assert _arr("{NaN,Infinity,-Infinity}", Scalar.FLOAT) == ["NaN", "Infinity", "-Infinity"]


def test_array_decoration_and_empty_arrays() -> None:
    assert _arr("[1:1][-2:-1][3:5]={{{1,2,3},{4,5,6}}}", Scalar.INT) == [[[1, 2, 3], [4, 5, 6]]]
    assert _arr("{}", Scalar.INT) == [] and _arr("{{},{}}", Scalar.INT) == [[], []]


def test_json_arrays() -> None:
    assert _arr('{"{}"}', Scalar.JSON) == [{}]
    assert _arr('{"{\\"foo\\": 1}", "{\\"bar\\": 2}"}', Scalar.JSON) == [{"foo": 1}, {"bar": 2}]
    assert _arr('{{"{\\"foo\\": 1}", "{\\"bar\\": 2}"}}', Scalar.JSON) == [[{"foo": 1},
                                                                          {"bar": 2}]]


@pytest.mark.parametrize("text", ["{1,2", "1,2}", "{1,2}x", '{"abc}', "[1:2]{1,2}"])
def test_unbalanced_arrays_are_errors(text: str) -> None:
    with pytest.raises(ValueError_):
        parse_pg_array(text, str)


def test_builtin_kinds() -> None:
    assert BUILTIN_KINDS[1007] == TypeKind(Scalar.INT, is_array=True)  # int4[]
    assert BUILTIN_KINDS[199] == TypeKind(Scalar.JSON, is_array=True)  # json[]
    assert BUILTIN_KINDS[20] == TypeKind(Scalar.TEXT)  # int8 stays a string
    assert kind_from_pg_type(0, "e", 0) == TypeKind(Scalar.TEXT)  # an enum
    assert kind_from_pg_type(16400, "b", 0) == TypeKind(Scalar.TEXT, is_array=True)  # enum[]
    assert kind_from_pg_type(23, "d", 1007) == TypeKind(Scalar.TEXT)  # a domain


def test_rows_as_objects_may_repeat_names() -> None:
    convs = [converter(BUILTIN_KINDS[23], False), converter(BUILTIN_KINDS[25], False)]
    assert row_json(["1", None], convs, object_keys(["a", "a"])) == '{"a":1,"a":null}'
    assert row_json(["1", "x"], convs, None) == '[1,"x"]'


@pytest.mark.parametrize(("tag", "expected"), [
    ("SELECT 3", ("SELECT", 3)), ("INSERT 0 5", ("INSERT", 5)), ("UPDATE 0", ("UPDATE", 0)),
    ("CREATE TABLE", ("CREATE", None)), ("BEGIN", ("BEGIN", None)), ("", ("", None)),
])
def test_command_tags(tag: str, expected: tuple[str, int | None]) -> None:
    assert parse_command_tag(tag) == expected


def test_begin_statement() -> None:
    assert begin_statement(None, False, False) == "START TRANSACTION"
    assert begin_statement("SERIALIZABLE", True, True) == (
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE")
