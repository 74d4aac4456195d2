#!/usr/bin/env python3
"""Write the endpoint reference of docs/api.md (section 17) from the server's OpenAPI document.

The document is the one the server serves at `/openapi.json`, built in process by
`levered_server.app.create_app(...).openapi()` (nothing is started or listened on). Everything
between the `openapi:begin` and `openapi:end` markers of docs/api.md is replaced: each operation
with its credential, parameters, body, responses and the section of the hand-written contract that
describes it (from the catalogue of section 3), then every schema as a field table. Run it with the
environment's interpreter: `.venv/bin/python scripts/gen_api_docs.py [--check]`; `--check` changes
nothing and exits 1 when the file is stale. tests/test_docs.py imports :func:`render` and checks
that the file is current and that the catalogue lists every operation.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import tempfile
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api.md"
BEGIN, END = "<!-- openapi:begin -->", "<!-- openapi:end -->"
METHODS = ("get", "post", "patch", "put", "delete")
CATALOGUE_ROW = re.compile(r"^\| ((?:GET|POST|PATCH|DELETE)(?:, (?:GET|POST|PATCH|DELETE))*) \| `([^`]+)` \|"
                           r"[^|]*\|[^|]*\| ([\d.]+) \|", re.M)


def openapi_document() -> dict[str, Any]:
    """The server's OpenAPI document, as `GET /openapi.json` answers it."""
    from levered_server.app import create_app
    from levered_server.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        return dict(create_app(Settings(data_dir=pathlib.Path(data_dir))).openapi())


def template(path: str) -> str:
    """A path with every parameter written `{}` (`:id` and `{optimization_id}` alike)."""
    return re.sub(r"\{[^}]+\}|:\w+", "{}", path)


def catalogue(text: str) -> dict[tuple[str, str], str]:
    """(method, templated path) → section, from the endpoint catalogue (section 3) of docs/api.md."""
    section = text[text.index("## 3. Endpoint catalogue"):text.index("## 4. ")]
    return {(method, template(path)): number for methods, path, number in CATALOGUE_ROW.findall(section)
            for method in methods.split(", ")}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every operation of the document, in document order."""
    return [(method.upper(), path, op) for path, ops in doc["paths"].items()
            for method, op in ops.items() if method in METHODS]


def _ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    """A schema's type in a few words: `string`, `array of Factor`, `"mab" | "cmab"`, `integer | null`."""
    if "$ref" in schema:
        return f"[`{_ref_name(schema)}`](#{_ref_name(schema).lower()})"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " \\| ".join(dict.fromkeys(_type(option) for option in schema[key]))
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        return f"array of {_type(items)}" if items else "array"
    if kind == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        return f"object of {_type(extra)}" if isinstance(extra, dict) and extra else "object"
    return str(kind) if kind else "any"


def _rule(schema: dict[str, Any]) -> str:
    """The limits a schema declares, in words."""
    parts = []
    for low, high, unit in (("minLength", "maxLength", " characters"), ("minimum", "maximum", ""),
                            ("minItems", "maxItems", " items")):
        if low in schema and high in schema:
            parts.append(f"{schema[low]}–{schema[high]}{unit}")
        elif low in schema:
            parts.append(f"≥ {schema[low]}{unit}")
        elif high in schema:
            parts.append(f"≤ {schema[high]}{unit}")
    if "exclusiveMinimum" in schema:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if "pattern" in schema:
        parts.append(f"matches `{schema['pattern']}`")
    if "format" in schema:
        parts.append(f"format `{schema['format']}`")
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            parts.append(_rule(option))
    return "; ".join(part for part in parts if part)


def _default(schema: dict[str, Any]) -> str:
    return f"`{json.dumps(schema['default'], ensure_ascii=False)}`" if "default" in schema else ""


def _parameters(op: dict[str, Any]) -> list[str]:
    params = op.get("parameters") or []
    if not params:
        return []
    lines = ["| Parameter | In | Type | Required | Default | Rule |", "|---|---|---|---|---|---|"]
    for param in params:
        schema = param.get("schema") or {}
        required = bool(param.get("required"))
        lines.append(f"| `{param['name']}` | {param['in']} | {_type(schema)} | {'yes' if required else 'no'} | "
                     f"{_default(schema)} | {_rule(schema)} |")
    return [*lines, ""]


def _response_schema(response: dict[str, Any]) -> str:
    schema = ((response.get("content") or {}).get("application/json") or {}).get("schema") or {}
    return _type(schema) if schema else "JSON (no schema declared)"


def _operation(method: str, path: str, op: dict[str, Any], section: str | None) -> list[str]:
    credential = "bearer" if op.get("security") else "public"
    described = f"described in {section}" if section else "**not in the catalogue**"
    lines = [f"#### `{method} {path}`", "",
             f"{_prose(op.get('description') or op.get('summary', ''))} Operation `{op['operationId']}`; "
             f"credential: {credential}; {described}.", ""]
    lines += _parameters(op)
    body = op.get("requestBody")
    if body:
        schema = ((body.get("content") or {}).get("application/json") or {}).get("schema") or {}
        lines += [f"Body: {_type(schema)}{'' if body.get('required') else ' (optional)'}.", ""]
    responses = op["responses"]
    success = [f"`{code}` {_response_schema(r)}" for code, r in responses.items() if code.startswith("2")]
    errors = [f"`{code}`" for code in responses if code[0] in "45"]
    lines.append(f"Responses: {', '.join(success)}" + (f"; errors {', '.join(errors)}." if errors else "."))
    return [*lines, ""]


def _prose(text: str) -> str:
    """A description from the server's code, its "(API.md 1.5)" read inside this file: "(1.5)"."""
    return re.sub(r"(?:reference/)?API\.md\s*", "", text.strip())


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"#### `{name}`", ""]
    if schema.get("description"):
        lines += [_prose(str(schema["description"])), ""]
    properties = schema.get("properties") or {}
    if not properties:
        return [*lines, f"Type: {_type(schema)}.", ""]
    required = set(schema.get("required") or [])
    if schema.get("additionalProperties") is False:
        lines += ["Unknown fields are refused (`422`, `unknown_field`).", ""]
    lines += ["| Field | Type | Required | Default | Rule |", "|---|---|---|---|---|"]
    for field, spec in properties.items():
        needed = field in required
        lines.append(f"| `{field}` | {_type(spec)} | {'yes' if needed else 'no'} | {_default(spec)} | "
                     f"{_rule(spec)} |")
    return [*lines, ""]


def render(doc: dict[str, Any], sections: dict[tuple[str, str], str]) -> str:
    """The markdown between the markers: operations in the catalogue's order, then the schemas."""
    def order(entry: tuple[str, str, dict[str, Any]]) -> tuple[tuple[int, ...], int]:
        number = sections.get((entry[0], template(entry[1])), "99")
        return tuple(int(part) for part in number.split(".")), METHODS.index(entry[0].lower())

    security = doc.get("components", {}).get("securitySchemes", {})
    schemes = "; ".join(f"`{name}` ({scheme.get('description', scheme.get('type'))})"
                        for name, scheme in security.items())
    lines = [f"Generated by `scripts/gen_api_docs.py` from the server's OpenAPI document "
             f"(OpenAPI {doc['openapi']}, {doc['info']['title']} {doc['info']['version']}); do not edit "
             "by hand. **bearer**: any of the security schemes " + schemes + "; **public**: no credential. "
             "Every error status of an `/api/v2/` operation answers the error envelope (1.5, schema "
             "`ErrorResponse`); the sections named give the semantics, limits and examples.", "",
             "### 17.1 Operations", ""]
    for method, path, op in sorted(operations(doc), key=order):
        lines += _operation(method, path, op, sections.get((method, template(path))))
    lines += ["### 17.2 Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"


def update(text: str, reference: str) -> str:
    """``text`` with everything between the markers replaced by ``reference``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{reference}{text[end:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale; change nothing")
    args = parser.parse_args()
    text = OUT.read_text()
    fresh = update(text, render(openapi_document(), catalogue(text)))
    if args.check:
        if fresh != text:
            print(f"{OUT} is stale: run scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(fresh)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
