"""Values across the SQL-over-HTTP boundary, converted exactly as Neon's proxy does.

Going in, JSON parameters become Postgres text (``None`` for NULL, JSON arrays as Postgres
array literals, objects as JSON text). Coming out, every value is read from the server in
text format and written as JSON *text* (so that json/jsonb values pass through verbatim
and object rows may repeat a column name, as Neon's streaming serializer does):
bool, int2, int4, float4/8 (NaN and infinities as strings) and json/jsonb become JSON,
arrays of any type become JSON arrays of their converted elements, everything else
(int8, numeric, timestamps, bytea, ...) stays a string. Raw text mode keeps every value
a string. The reference is ``proxy/src/serverless/json.rs`` in neondatabase/neon.

One deliberate difference: an empty array ``{}`` becomes ``[]`` (Neon's current parser
fails on it for non-text element types).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from psycopg.postgres import types as pg_types

# ``json.encoder.encode_basestring`` is the C-accelerated string quoter json.dumps uses;
# it leaves non-ASCII characters as they are, like serde_json.
encode_str: Callable[[str], str] = json.encoder.encode_basestring


class ValueError_(Exception):
    """The server sent text we could not convert (Neon answers 500 for this)."""


class ResponseTooLarge(Exception):
    """The JSON answer outgrew its budget; stop reading rows (Neon answers 507)."""


@dataclass(frozen=True)
class Statement:
    query: str
    params: list[str | None]
    array_mode: bool | None = None  # per-statement "arrayMode" overrides the header


class Budget:
    """Bytes of JSON a whole request may produce (Neon's max_response_size_bytes)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise ResponseTooLarge(self.limit)


class Scalar(Enum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    JSON = "json"
    TEXT = "text"


BOOL_OID, INT2_OID, INT4_OID, FLOAT4_OID, FLOAT8_OID = 16, 21, 23, 700, 701
JSON_OID, JSONB_OID = 114, 3802
_SCALARS = {BOOL_OID: Scalar.BOOL, INT2_OID: Scalar.INT, INT4_OID: Scalar.INT,
            FLOAT4_OID: Scalar.FLOAT, FLOAT8_OID: Scalar.FLOAT,
            JSON_OID: Scalar.JSON, JSONB_OID: Scalar.JSON}


class TypeKind:
    """How one column type converts: a scalar kind, or an array of a scalar kind."""

    __slots__ = ("scalar", "is_array")

    def __init__(self, scalar: Scalar, is_array: bool = False) -> None:
        self.scalar = scalar
        self.is_array = is_array

    def __repr__(self) -> str:
        return f"TypeKind({self.scalar.value}{'[]' if self.is_array else ''})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TypeKind) and other.scalar is self.scalar
                and other.is_array == self.is_array)

    def __hash__(self) -> int:
        return hash((self.scalar, self.is_array))


def _builtin_kinds() -> dict[int, TypeKind]:
    kinds: dict[int, TypeKind] = {}
    for info in pg_types:
        scalar = _SCALARS.get(info.oid, Scalar.TEXT)
        kinds[info.oid] = TypeKind(scalar)
        if info.array_oid:
            kinds[info.array_oid] = TypeKind(scalar, is_array=True)
    # Frequent pseudo types psycopg does not list (pg_sleep() returns void).
    kinds.setdefault(2278, TypeKind(Scalar.TEXT))  # void
    kinds.setdefault(705, TypeKind(Scalar.TEXT))  # unknown
    return kinds


BUILTIN_KINDS: dict[int, TypeKind] = _builtin_kinds()

# Looks up types the static table does not know (enums, composites, user arrays).
# An array is what tokio-postgres calls Kind::Array: not an enum, pseudo type or domain,
# and with an element type.
TYPE_LOOKUP_SQL = (
    "SELECT t.oid::int8, t.typelem::int8, t.typtype::text, t.typbasetype::int8 "
    "FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::oid[])"
)


def kind_from_pg_type(elem_oid: int, typtype: str, basetype: int) -> TypeKind:
    """The conversion for a type described by a pg_type row (see TYPE_LOOKUP_SQL)."""
    if typtype in ("e", "p") or basetype != 0 or elem_oid == 0:
        return TypeKind(Scalar.TEXT)
    elem = BUILTIN_KINDS.get(elem_oid)
    scalar = elem.scalar if elem is not None and not elem.is_array else Scalar.TEXT
    return TypeKind(scalar, is_array=True)


# ---------------------------------------------------------------- parameters (JSON in)

class ParamError(Exception):
    """A JSON parameter Postgres cannot be sent (Neon answers 400)."""


# serde_json's recursion limit, which bounds what Neon's proxy parses; deeper parameters
# would also exhaust Python's own recursion while they are converted.
MAX_PARAM_DEPTH = 128


def json_to_pg_params(params: Sequence[Any]) -> list[str | None]:
    """Neon's json_to_pg_text: each JSON parameter as the text Postgres receives.
    ParamError for what no Postgres text can carry: NaN and infinities (JSON has
    neither), nesting deeper than MAX_PARAM_DEPTH, NUL characters, lone surrogates."""
    _check_depth(params)
    try:
        texts = [_param_text(v) for v in params]
    except (ValueError, RecursionError) as ex:
        raise ParamError(f"invalid parameter: {ex}") from None
    for i, text in enumerate(texts, 1):
        if text is not None:
            check_pg_text(text, f"parameter ${i}")
    return texts


def check_pg_text(text: str, what: str) -> None:
    """Postgres text is UTF-8 without NUL: refuse what would fail only at the server."""
    if "\x00" in text:
        raise ParamError(f"{what} contains a NUL character (\\u0000), which Postgres text "
                         "cannot hold")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ParamError(f"{what} is not valid Unicode (a lone surrogate such as "
                         "\\ud800)") from None


def _check_depth(params: Sequence[Any]) -> None:
    stack: list[tuple[Any, int]] = [(params, 0)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth >= MAX_PARAM_DEPTH:
            raise ParamError(f"invalid parameter: nested more than {MAX_PARAM_DEPTH} "
                             "levels deep")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (list, dict)))


def _param_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value  # sent as a parameter, so no quoting
    if isinstance(value, list):
        return _pg_array_literal(value)
    return _json_text(value)


def _json_text(value: Any) -> str:
    # serde_json's compact form: no spaces, non-ASCII kept.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _pg_array_literal(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        items = (_pg_array_literal(v) for v in value)
        return "{" + ",".join("NULL" if v is None else v for v in items) + "}"
    if isinstance(value, dict):
        return _json_text(_json_text(value))  # an object is a quoted JSON string element
    return _json_text(value)  # strings get JSON quoting, which Postgres arrays accept


# ---------------------------------------------------------------- values (text out)

def converter(kind: TypeKind, raw_output: bool) -> Callable[[str], str]:
    """A function from a column's Postgres text to its JSON text."""
    if raw_output:
        return encode_str
    if kind.is_array:
        scalar = _SCALAR_CONVERTERS[kind.scalar]
        return lambda text: parse_pg_array(text, scalar)
    return _SCALAR_CONVERTERS[kind.scalar]


def _bool(text: str) -> str:
    return "true" if text == "t" else "false"


def _int(text: str) -> str:
    try:
        value = int(text)
    except ValueError:
        raise ValueError_(f"parse int error: {text!r}") from None
    if not -2**31 <= value < 2**31:
        raise ValueError_(f"parse int error: {text!r} out of range")
    return str(value)


def _float(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        raise ValueError_(f"parse float error: {text!r}") from None
    if math.isfinite(value):
        return repr(value)
    return encode_str(text)  # NaN, Infinity, -Infinity stay strings, as in Neon


def _json(text: str) -> str:
    return text  # the server's json/jsonb text is valid JSON: pass it through


_SCALAR_CONVERTERS: dict[Scalar, Callable[[str], str]] = {
    Scalar.BOOL: _bool, Scalar.INT: _int, Scalar.FLOAT: _float, Scalar.JSON: _json,
    Scalar.TEXT: encode_str,
}


def parse_pg_array(text: str, elem: Callable[[str], str], delim: str = ",") -> str:
    """A Postgres array literal as JSON text; nested arrays nest, bounds are dropped."""
    if text.startswith("["):
        bounds, eq, rest = text.partition("=")
        if not eq:
            raise ValueError_("unbalanced array")
        text = rest
    text = text.lstrip()
    out: list[str] = []
    pos = _parse_array(text, 0, elem, delim, out)
    if pos != len(text):
        raise ValueError_("unbalanced array")
    return "".join(out)


def _parse_array(s: str, pos: int, elem: Callable[[str], str], delim: str,
                 out: list[str]) -> int:
    if not s.startswith("{", pos):
        raise ValueError_("unbalanced array")
    pos = _skip_ws(s, pos + 1)
    out.append("[")
    if s.startswith("}", pos):
        out.append("]")
        return _skip_ws(s, pos + 1)
    first = True
    while True:
        if not first:
            out.append(",")
        first = False
        pos = _parse_item(s, pos, elem, delim, out)
        if s.startswith(delim, pos):
            pos += len(delim)
            continue
        break
    if not s.startswith("}", pos):
        raise ValueError_("unbalanced array")
    out.append("]")
    return _skip_ws(s, pos + 1)


def _parse_item(s: str, pos: int, elem: Callable[[str], str], delim: str,
                out: list[str]) -> int:
    pos = _skip_ws(s, pos)
    if s.startswith("{", pos):
        return _parse_array(s, pos, elem, delim, out)
    if s.startswith('"', pos):
        chunks: list[str] = []
        pos += 1
        while True:
            q, b = s.find('"', pos), s.find("\\", pos)
            if q < 0:
                raise ValueError_("unbalanced quoted string")
            if 0 <= b < q:
                chunks.append(s[pos:b])
                if b + 1 >= len(s):
                    raise ValueError_("unbalanced quoted string")
                chunks.append(s[b + 1])
                pos = b + 2
                continue
            chunks.append(s[pos:q])
            pos = _skip_ws(s, q + 1)
            break
        out.append(elem("".join(chunks)))  # a quoted "NULL" is the string NULL
        return pos
    end = len(s)
    for stop in (s.find(delim, pos), s.find("}", pos)):
        if 0 <= stop < end:
            end = stop
    if end == len(s):
        raise ValueError_("unbalanced array")
    item = s[pos:end].rstrip()
    out.append("null" if item == "NULL" else elem(item))
    return end


def _skip_ws(s: str, pos: int) -> int:
    n = len(s)
    while pos < n and s[pos].isspace():
        pos += 1
    return pos


def row_json(values: Sequence[str | None], convs: Sequence[Callable[[str], str]],
             keys: Sequence[str] | None) -> str:
    """One row as JSON text: an array, or an object whose keys may repeat (``keys`` are
    pre-encoded ``"name":`` prefixes)."""
    parts = ["null" if v is None else c(v) for v, c in zip(values, convs, strict=False)]
    if keys is None:
        return "[" + ",".join(parts) + "]"
    return "{" + ",".join([k + p for k, p in zip(keys, parts, strict=False)]) + "}"


def object_keys(names: Sequence[str]) -> list[str]:
    return [encode_str(n) + ":" for n in names]


def parse_command_tag(tag: str) -> tuple[str, int | None]:
    """``("INSERT", 3)`` from ``INSERT 0 3``; the count is None when the tag has none."""
    parts = tag.split(" ")
    name = parts[0]
    count_text = parts[2] if name == "INSERT" and len(parts) > 2 else (
        parts[1] if name != "INSERT" and len(parts) > 1 else None)
    try:
        return name, int(count_text) if count_text is not None else None
    except ValueError:
        return name, None


class PgResult(Protocol):
    """The slice of psycopg's ``pq.abc.PGresult`` a statement's answer is built from."""

    @property
    def ntuples(self) -> int: ...
    @property
    def nfields(self) -> int: ...
    @property
    def command_status(self) -> bytes | None: ...
    def fname(self, column_number: int) -> bytes | None: ...
    def ftable(self, column_number: int) -> int: ...
    def ftablecol(self, column_number: int) -> int: ...
    def ftype(self, column_number: int) -> int: ...
    def fmod(self, column_number: int) -> int: ...
    def fsize(self, column_number: int) -> int: ...
    def get_value(self, row_number: int, column_number: int) -> bytes | None: ...


class StatementJson:
    """Builds one statement's JSON answer from its results, row chunk by row chunk.

    When a column's type is unknown (enums, user arrays: see TYPE_LOOKUP_SQL) rows are
    kept as text until ``resolve`` is given the types, since a row can only be converted
    once its types are known and the connection is busy until the statement ends.
    """

    def __init__(self, *, raw_output: bool, array_mode: bool, budget: Budget,
                 kind_of: Callable[[int], TypeKind | None], encoding: str) -> None:
        self.raw_output, self.array_mode, self.budget = raw_output, array_mode, budget
        self.kind_of, self.encoding = kind_of, encoding
        self.fields_json: str | None = None
        self.names: list[str] = []
        self.oids: list[int] = []
        self.unknown_oids: list[int] = []
        self.command_tag = ""
        self._out: list[str] = []
        self._pending: list[list[str | None]] = []
        self._estimated = 0
        self._convs: list[Callable[[str], str]] | None = None
        self._keys: list[str] | None = None

    def _describe(self, res: PgResult) -> None:
        enc, n = self.encoding, res.nfields
        self.names = [(res.fname(i) or b"").decode(enc) for i in range(n)]
        self.oids = [res.ftype(i) for i in range(n)]
        fields = [{"name": self.names[i], "dataTypeID": self.oids[i], "tableID": res.ftable(i),
                   "columnID": res.ftablecol(i), "dataTypeSize": res.fsize(i),
                   "dataTypeModifier": res.fmod(i), "format": "text"} for i in range(n)]
        self.fields_json = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        self.budget.spend(len(self.fields_json))
        kinds = [TypeKind(Scalar.TEXT) if self.raw_output else self.kind_of(o)
                 for o in self.oids]
        self.unknown_oids = sorted({o for o, k in zip(self.oids, kinds, strict=False) if k is None})
        if not self.unknown_oids:
            self._prepare([k for k in kinds if k is not None])

    def _prepare(self, kinds: list[TypeKind]) -> None:
        self._convs = [converter(k, self.raw_output) for k in kinds]
        self._keys = None if self.array_mode else object_keys(self.names)

    def rows(self, res: PgResult) -> None:
        if self.fields_json is None:
            self._describe(res)
        enc, get, cols = self.encoding, res.get_value, range(res.nfields)
        if res.command_status:  # libpq puts the tag on the last chunk of rows
            self.command_tag = res.command_status.decode(enc)
        rows = range(res.ntuples)
        if self._convs is None:
            for r in rows:
                values = [None if (v := get(r, c)) is None else v.decode(enc) for c in cols]
                self._pending.append(values)
                estimate = 2 + sum(5 if v is None else len(v) + 1 for v in values)
                self._estimated += estimate
                self.budget.spend(estimate)
            return
        # Column by column, then rows by zip: far fewer Python-level steps per value.
        columns = []
        for c, conv in zip(cols, self._convs, strict=False):
            raw = [get(r, c) for r in rows]
            column = ["null" if v is None else conv(v.decode(enc)) for v in raw]
            if self._keys is not None:
                key = self._keys[c]
                column = [key + v for v in column]
            columns.append(column)
        opener, closer = ("[", "]") if self._keys is None else ("{", "}")
        texts = [opener + ",".join(values) + closer for values in zip(*columns, strict=False)]
        if not columns:
            texts = [opener + closer for _ in rows]
        self._out.extend(texts)
        self.budget.spend(sum(map(len, texts)) + len(texts))

    def done(self, res: PgResult) -> None:
        if self.fields_json is None:
            self._describe(res)
        if res.command_status:
            self.command_tag = res.command_status.decode(self.encoding)

    def resolve(self, kinds: dict[int, TypeKind]) -> None:
        """Convert the rows kept while ``unknown_oids`` had no known types."""
        self._prepare([self.kind_of(o) or kinds.get(o) or TypeKind(Scalar.TEXT)
                       for o in self.oids])
        convs, actual = self._convs or [], 0
        for values in self._pending:
            text = row_json(values, convs, self._keys)
            self._out.append(text)
            actual += len(text) + 1
        self._pending = []
        self.budget.spend(actual - self._estimated)

    def json(self) -> str:
        name, count = parse_command_tag(self.command_tag)
        return ('{"fields":' + (self.fields_json or "[]") + ',"rows":[' + ",".join(self._out)
                + '],"command":' + encode_str(name) + ',"rowCount":'
                + ("null" if count is None else str(count)) + ',"rowAsArray":'
                + ("true" if self.array_mode else "false") + "}")
