"""Neon's published API v2 spec, loaded from the npm package, as a response validator.

``NeonSpec.validate(method, path, status, body)`` checks one JSON answer against the
schema the spec gives for that operation and status (or its ``default`` for errors).
OpenAPI 3.0 schemas are turned into JSON Schema 2020-12 (``nullable`` becomes a ``null``
type) once per session.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

COMPAT_DIR = Path(__file__).resolve().parent
SPEC_PATH = COMPAT_DIR / "node_modules/@neondatabase/api-client/public-v2-for-users.gen.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items()
           if k not in ("nullable", "example", "examples", "discriminator")}
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class SpecOperation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


class NeonSpec:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        raw = yaml.safe_load(path.read_text())
        self.raw = raw
        self.components = _convert(raw["components"])
        self.operations: list[SpecOperation] = []
        for template, item in raw["paths"].items():
            # Literal segments first so /branches/count wins over /branches/{branch_id}.
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            for method in METHODS:
                if method in item:
                    op = item[method]
                    self.operations.append(SpecOperation(
                        op["operationId"], method.upper(), template, re.compile(regex),
                        {str(k): v for k, v in op.get("responses", {}).items()}))
        self.operations.sort(key=lambda o: o.template.count("{"))
        self.by_id = {o.operation_id: o for o in self.operations}

    def find(self, method: str, path: str) -> SpecOperation | None:
        for op in self.operations:
            if op.method == method.upper() and op.pattern.match(path):
                return op
        return None

    def _response_schema(self, op: SpecOperation, status: int) -> Any:
        resp = op.responses.get(str(status)) or op.responses.get("default")
        if resp is None:
            raise AssertionError(f"{op.operation_id}: the spec has no response {status}")
        if "$ref" in resp:
            resp = self.raw["components"]["responses"][resp["$ref"].split("/")[-1]]
        content = resp.get("content", {}).get("application/json")
        return None if content is None else _convert(content["schema"])

    def validate(self, method: str, path: str, status: int, body: Any) -> str:
        """Validate; returns the operation id. Raises AssertionError on a mismatch."""
        op = self.find(method, path)
        if op is None:
            raise AssertionError(f"{method} {path} is not an operation of Neon's spec")
        if str(status) not in op.responses and status < 400:
            raise AssertionError(f"{op.operation_id} answered {status}; the spec allows "
                                 f"{sorted(op.responses)}")
        schema = self._response_schema(op, status)
        if schema is None:
            return op.operation_id
        root = {**schema, "components": self.components}
        errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(body),
                        key=lambda e: list(e.absolute_path))
        if errors:
            detail = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: "
                               f"{e.message[:200]}" for e in errors[:5])
            raise AssertionError(f"{op.operation_id} ({method} {path} -> {status}) does not "
                                 f"match Neon's schema: {detail}")
        return op.operation_id


@functools.cache
def neon_spec() -> NeonSpec:
    if not SPEC_PATH.exists():
        raise FileNotFoundError(f"{SPEC_PATH} is missing: run 'npm ci' in {COMPAT_DIR}")
    return NeonSpec()
