"""A small validator for the JSON Schema subset the OpenAPI document uses."""

from __future__ import annotations

from typing import Any

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def errors(doc: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """Every mismatch between `value` and `schema` (empty: it validates)."""
    schema = resolve(doc, schema)
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(doc, s, value, path)]
        return [] if len(matches) == 1 else [f"{path}: matches {len(matches)} of oneOf"]
    found: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, k) for k in kinds):
            return [f"{path}: {value!r:.60} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{path}: missing {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += errors(doc, sub, value[name], f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(doc, schema["items"], item, f"{path}[{i}]")
    return found


def response_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    operation = doc["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def check_response(doc: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    problems = errors(doc, response_schema(doc, path, method, status), body)
    assert not problems, (method, path, status, problems[:10])
