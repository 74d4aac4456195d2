"""JSON request bodies: content type, size, syntax, object-ness, then the schema."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from levered_server import limits
from levered_server.api.heavy_lane import run_heavy
from levered_server.background import Pacer
from levered_server.errors import BadRequest, ValidationFailed
from levered_server.schemas.common import nul_paths, surrogate_paths, validate

M = TypeVar("M", bound=BaseModel)
MIB = 1024 * 1024
MAX_DEPTH = 64
LARGE = 256 * 1024
#: Bodies up to this size (a serve call's, most calls') take none of the body budget: the
#: server buffers that much per connection anyway, and a client holding the budget with a
#: slow large body must not hold up serving.
SMALL = 64 * 1024


def expected_size(request: Request, max_bytes: int) -> int:
    """The body's size as declared (`Content-Length`), else `max_bytes`; what it may take of
    the server's body budget.

    :raises BadRequest: it declares more than `max_bytes`.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > max_bytes:
            raise BadRequest(f"Request body is larger than {max_bytes} bytes.")
        return int(declared)
    return max_bytes


async def read_json(request: Request, *, max_bytes: int = MIB, allow_empty: bool = False,
                    allow_text_plain: bool = False, reject_nul: bool = True,
                    budgeted: bool = False) -> Any:
    """Read and parse the body as a JSON object (API.md 1.2), holding its size of the
    server's body budget meanwhile (`limits.BodyBudget`) unless it is small or the caller
    holds it already (`budgeted`).

    :raises BadRequest: wrong content type, too large, not JSON, not an object.
    :raises Unavailable: the body budget stayed in use (503, Retry-After).
    """
    size = expected_size(request, max_bytes)
    if budgeted or size <= SMALL:
        return await _read_json(request, max_bytes, allow_empty, allow_text_plain, reject_nul)
    async with limits.BUDGET.reserve(size):
        return await _read_json(request, max_bytes, allow_empty, allow_text_plain, reject_nul)


async def _read_json(request: Request, max_bytes: int, allow_empty: bool,
                     allow_text_plain: bool, reject_nul: bool) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(f"Request body is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("Request body is empty; send a JSON object.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (ctype == "application/json" or ctype.endswith("+json")
            or (allow_text_plain and ctype == "text/plain")):
        raise BadRequest("Content-Type must be application/json.")
    if len(raw) > LARGE:
        return await run_heavy(_parse, raw, reject_nul)
    return _parse(raw, reject_nul)


def _parse(raw: bytes, reject_nul: bool) -> Any:
    """The body as a JSON object, checked for depth (and NUL, lone surrogates)."""
    too_deep = BadRequest(f"Request body is nested more than {MAX_DEPTH} levels deep.")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    # The walks below are skipped when the raw text rules out what they look for (a serve
    # body, most bodies): nesting needs a bracket per level; NUL and lone surrogates reach a
    # parsed string only from a `\u` escape or, as `json.loads` decodes bytes with
    # `surrogatepass`, from a UTF-8-encoded surrogate (lead byte 0xED).
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and depth_of(data) > MAX_DEPTH:
        raise too_deep
    if reject_nul and (b"\\u" in raw or b"\xed" in raw):
        # PostgreSQL cannot store NUL in text; refuse it everywhere, on every backend.
        fields = [{"field": p, "code": "format", "message": "must not contain NUL characters"}
                  for p in nul_paths(data)]
        fields += [{"field": p, "code": "format",
                    "message": "must be valid Unicode (no lone surrogates such as \\ud800)"}
                   for p in surrogate_paths(data)]
        if fields:
            raise ValidationFailed(fields)
    return data


def depth_of(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    pace = Pacer()
    while stack:
        pace()
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack += [(sub, depth + 1) for sub in (item.values() if isinstance(item, dict)
                                                   else item)]
    return deepest


def json_body(model: type[M], *, max_bytes: int = MIB, allow_empty: bool = False,
              allow_text_plain: bool = False) -> Callable[[Request], Awaitable[M]]:
    """A dependency that yields the body validated into `model` (422 on field errors)."""

    async def dependency(request: Request) -> M:
        data = await read_json(request, max_bytes=max_bytes, allow_empty=allow_empty,
                               allow_text_plain=allow_text_plain)
        result: M = validate(model, data)
        return result

    return dependency


BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a body read by `json_body` (FastAPI cannot see it)."""
    BODY_MODELS[model.__name__] = model
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def add_body_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put the schemas of `body_doc` models into an OpenAPI document's components."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, sub_schema in schema.pop("$defs", {}).items():
            schemas.setdefault(sub, sub_schema)
        schemas[name] = schema
    return document
