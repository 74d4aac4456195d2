"""Public serving endpoints with open CORS (API.md 7, 12.2)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import PublicCtx
from levered_server.errors import ApiError, Unavailable
from levered_server.middleware import error_payload
from levered_server.runtime import Runtime
from levered_server.schemas.serving import BestVariantRequest, ServeOut, ServeRequest
from levered_server.services import serving

log = logging.getLogger("levered_server")
PREFIX = "/api/v2/optimizations"
router = APIRouter(prefix=PREFIX, tags=["serving"])
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}


async def respond(runtime: Runtime, request: Request, optimization_id: str | None) -> Response:
    """Serve (with an optimization ID) or best-variant (without one): the whole endpoint."""
    data = await read_json(request, allow_empty=optimization_id is not None,
                           allow_text_plain=True)
    parsed = serving.parse_request(data, best_variant=optimization_id is None)
    # Inline on the event loop: with a warm snapshot the only I/O is one indexed lock
    # lookup; a thread hop costs more than that (see docs/server.md, bench/serve). Stale
    # snapshots are refreshed and new versions rebuilt behind, never here (serve_cache.py).
    decision = serving.decide(runtime=runtime,
                              optimization_id=optimization_id or parsed["optimization_id"],
                              request=parsed, record_exposure=optimization_id is not None)
    result = decision.result
    if decision.write is not None:
        # Acknowledge only what is committed (services/serve_log.py): the wait is the group
        # commit, off the event loop.
        future = runtime.serve_log.submit(decision.write)
        try:
            held = future.result() if future.done() else await asyncio.wrap_future(future)
        except Exception:  # noqa: BLE001 - the store's error is logged by the writer
            raise Unavailable("Recording the serve failed, so it was not acknowledged; retry "
                              "(the user keeps any variant already stored).") from None
        result = decision.final(held)
    # Built by hand: this is the hot path, and the shape is `ServeOut`.
    meta = {"request_id": request.state.request_id, "organization_id": None}
    return JSONResponse({**result, "meta": meta}, headers=CORS)


class ServeFastPath:
    """``POST …/serve`` and ``…/best-variant`` straight to :func:`respond` (pure ASGI).

    The hot path skips FastAPI's routing, dependency solving and exception middleware, which
    took more of the event loop than the serving itself; inside :class:`RequestContext`, so
    request ids, rate limits and the last-resort 500 are the same. The routes below stay for
    the OpenAPI document and for anything this passes on.
    """

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        optimization_id = _served(scope)
        if optimization_id is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await respond(self.runtime, request, optimization_id or None)
        except ApiError as exc:
            if exc.status >= 500:  # as the app's handler logs them
                log.warning("%s request_id=%s: %s", exc.code, request.state.request_id,
                            exc.message)
            response = Response(error_payload(request.state.request_id, exc.code, exc.message,
                                              exc.details),
                                status_code=exc.status, media_type="application/json",
                                headers=exc.headers)
        await response(scope, receive, send)


def _served(scope: dict[str, Any]) -> str | None:
    """The optimization ID of a serve request, "" for best-variant, None for anything else."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path == PREFIX + "/best-variant":
        return ""
    if path.startswith(PREFIX + "/") and path.endswith("/serve"):
        middle = path[len(PREFIX) + 1:-len("/serve")]
        if middle and "/" not in middle:
            return middle
    return None


@router.post("/best-variant", operation_id="bestVariant", response_model=ServeOut,
             openapi_extra=body_doc(BestVariantRequest))
async def best_variant(ctx: PublicCtx, request: Request) -> Response:
    """Choose a variant for an SDK (writes the lock, records no exposure)."""
    return await respond(ctx.runtime, request, None)


@router.post("/{optimization_id}/serve", operation_id="serve", response_model=ServeOut,
             openapi_extra=body_doc(ServeRequest, required=False))
async def serve(ctx: PublicCtx, optimization_id: str, request: Request) -> Response:
    """Choose a variant for a user and record the exposure."""
    return await respond(ctx.runtime, request, optimization_id)


@router.options("/best-variant", include_in_schema=False)
@router.options("/{optimization_id}/serve", include_in_schema=False)
def preflight() -> Response:
    """CORS preflight: any origin, no credentials."""
    return Response(status_code=204, headers=CORS)
