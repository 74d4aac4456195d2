"""The application factory: routers, error handlers, request context, lifespan."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from levered_server import __version__
from levered_server.api.serve import fast_path, served_optimization
from levered_server.errors import ApiError
from levered_server.middleware import RequestContext, error_payload
from levered_server.runtime import Runtime
from levered_server.settings import Settings, settings_from_env

log = logging.getLogger("levered_server")


def _error(request: Request, status: int, code: str, message: str,
           details: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> Response:
    rid = getattr(request.state, "request_id", "req_unknown")
    return Response(error_payload(rid, code, message, details), status_code=status,
                    media_type="application/json", headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status >= 500 and not exc.quiet:
        log.warning("%s request_id=%s: %s", exc.code,
                    getattr(request.state, "request_id", "-"), exc.message)
    return _error(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _request_validation(request: Request, exc: Exception) -> Response:
    # Bodies are parsed by `api.bodies`; what reaches here are query, path and
    # header parameters, which the contract answers with 400 bad_request.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": ("query", "?"), "msg": "invalid"}
    loc = first.get("loc", ())
    name = str(loc[-1]) if loc else "?"
    return _error(request, 400, "bad_request",
                  f"Invalid query parameter {name!r}: {first.get('msg', 'invalid')}.",
                  {"parameter": name})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405):
        return _error(request, 404, "not_found",
                      f"No such endpoint: {request.method} {request.url.path}")
    code = {400: "bad_request", 401: "unauthorized", 403: "forbidden"}.get(exc.status_code,
                                                                             "internal")
    return _error(request, exc.status_code, code, str(exc.detail))


class LeveredApp(FastAPI):
    """FastAPI, except that serving requests go straight to the serve fast path
    (`api.serve.fast_path`): the hot path skips FastAPI's middleware stack and routing."""

    serve_fast: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.serve_fast is not None and served_optimization(scope) is not None:
            await self.serve_fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the Levered API application.

    :param settings: server settings; default: from the environment.
    """
    settings = settings or settings_from_env()
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = LeveredApp(title="Levered API", version=__version__, lifespan=lifespan,
                     docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.runtime = runtime
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    from levered_server.api import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
    app.serve_fast = fast_path(runtime)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(RequestContext, settings=settings)
    _document_bodies(app)
    return app


def _document_bodies(app: FastAPI) -> None:
    from levered_server.api.bodies import add_body_schemas

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(add_body_schemas(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


ERROR_DESCRIPTIONS = {
    400: "bad_request (malformed JSON, non-object body, wrong content type, too large, bad "
         "query parameter) or read_only_violation",
    401: "unauthorized: no valid API key or access token",
    403: "forbidden: the credential may not do this",
    404: "not_found",
    409: "conflict with the object's state (warehouse_not_connected, optimization_not_live, "
         "training_in_progress, metric_in_use, managed_warehouse_required...)",
    422: "validation_error (details.fields), invalid_sql or invalid_metric_sql",
    429: "rate_limited (Retry-After)",
    502: "warehouse_error: the warehouse failed, was unreachable or timed out",
    503: "unavailable: transient, nothing was changed; retry (Retry-After)",
}
WAREHOUSE_PATHS = ("/api/v2/warehouse/", "/results", "/observations", "/train")


def error_statuses(method: str, path: str, operation: dict[str, Any], *,
                   public: bool) -> list[int]:
    """The error statuses an `/api/v2` operation can answer with the envelope (API.md 1.5)."""
    statuses = {400, 429}  # any request: bad query or body; every /api/ route is rate limited
    if not public:
        statuses.add(401)
    if path.startswith(("/api/v2/api-keys", "/api/v2/ingest/")):
        statuses.add(403)  # key management needs a login session; ingestion an API key
    if "{" in path or public:
        statuses.add(404)
    if method != "get" or public:
        statuses.add(409)
    if ("requestBody" in operation or public) and not path.startswith("/api/v2/ingest/"):
        statuses.add(422)  # ingestion rejects events one by one, in a 207
    if any(part in path for part in WAREHOUSE_PATHS):
        statuses |= {409, 422, 502}
    if path.startswith("/api/v2/ingest/") or public:
        statuses.add(503)  # the write was not committed (serve: its lock and exposure)
    return sorted(statuses)


def add_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the error envelope on every `/api/v2` operation, in one place."""
    from levered_server.schemas.common import ErrorResponse

    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["ErrorResponse"] = schema
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/api/v2/"):
            continue  # OAuth answers per the RFCs; /healthz has no envelope
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None) if _is_fastapi_422(responses.get("422")) else None
            # Operations that read a credential declare it (`security`); serving does not.
            for status in error_statuses(method, path, operation,
                                         public="security" not in operation):
                responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status],
                                                   "content": content})
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in json.dumps(document["paths"]):
            schemas.pop(name, None)
    return document


def _is_fastapi_422(response: Any) -> bool:
    # FastAPI's own "Validation Error" (HTTPValidationError) is not what this server sends.
    return isinstance(response, dict) and "HTTPValidationError" in json.dumps(response)


def openapi_document(app: FastAPI) -> str:
    """The served OpenAPI document as JSON text (for tests and docs)."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True)
