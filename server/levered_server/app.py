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
    if exc.status >= 500:
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

    app = FastAPI(title="Levered API", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.runtime = runtime
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    from levered_server.api import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
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
        return add_body_schemas(generate())

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document(app: FastAPI) -> str:
    """The served OpenAPI document as JSON text (for tests and docs)."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True)
