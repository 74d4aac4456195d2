"""Schema bases, the `meta` object, and Pydantic-error → contract-error mapping."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from levered_server.errors import ValidationFailed


class RequestModel(BaseModel):
    """Request bodies: unknown fields rejected, JSON types taken strictly."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Meta(BaseModel):
    """`meta` of every success response (API.md 1.4); declared last in each response model."""

    request_id: str
    organization_id: str | None


class Deleted(BaseModel):
    """Response of soft deletes and revocations."""

    id: str
    deleted: bool
    meta: Meta


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The error envelope (API.md 1.5)."""

    error: ErrorBody
    meta: dict[str, str]


_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_short": "too_short",
    "too_short": "too_short",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "string_pattern_mismatch": "format",
    "uuid_parsing": "format",
}
_OWN = {"required", "type", "format", "too_short", "too_long", "out_of_range", "duplicate",
        "unknown_field", "immutable", "invalid_value", "too_many", "not_found",
        "unknown_context_factor", "excluded_baseline", "too_few_variants", "type_mismatch"}
_MESSAGES = {"required": "is required", "unknown_field": "unknown field"}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """Render a location as `a.b[1].c`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def contract_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> ValidationFailed:
    """Convert Pydantic errors into `422 validation_error` with contract field codes."""
    fields = []
    for err in exc.errors():
        kind = err["type"]
        if kind in _OWN:
            code = kind
        elif kind in _CODES:
            code = _CODES[kind]
        elif kind.endswith("_type") or kind.endswith("_parsing") or kind == "int_from_float":
            code = "type"
        else:
            code = "invalid_value"
        message = _MESSAGES.get(code) or str(err["msg"]).removeprefix("Value error, ")
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        fields.append({"field": field_path(prefix + loc), "code": code, "message": message})
    return ValidationFailed(fields)


def validate(model: type[BaseModel], data: Any) -> Any:
    """Validate `data` into `model`, raising the contract's 422 on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise contract_errors(exc) from None


def nul_paths(value: Any, path: str = "") -> list[str]:
    """Paths of the strings (keys included) that contain a NUL character."""
    found: list[str] = []
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found += [sub] if "\x00" in str(key) else nul_paths(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += nul_paths(item, f"{path}[{i}]")
    return found[:50]


def surrogate_paths(value: Any, path: str = "") -> list[str]:
    """Paths of the strings (keys included) with a lone surrogate, which is not UTF-8 text."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack and len(found) < 50:
        item, where = stack.pop()
        if isinstance(item, str):
            if not _utf8(item):
                found.append(where)
        elif isinstance(item, dict):
            for key, sub in item.items():
                inner = f"{where}.{key}" if where else str(key)
                if _utf8(str(key)):
                    stack.append((sub, inner))
                else:
                    found.append(inner.encode(errors="backslashreplace").decode())
        elif isinstance(item, list):
            stack += [(sub, f"{where}[{i}]") for i, sub in enumerate(item)]
    return sorted(found)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class WeightedEstimate(BaseModel):
    """A variant's mean reward over optimized traffic from the logged propensities (extension)."""

    estimator: str
    mean: float
    ci_lower: float
    ci_upper: float
    effective_n: float
