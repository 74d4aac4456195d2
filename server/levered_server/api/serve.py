"""Public serving endpoints with open CORS (API.md 7, 12.2)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import PublicCtx
from levered_server.errors import ApiError, Unavailable
from levered_server.middleware import RequestContext, error_payload
from levered_server.runtime import Runtime
from levered_server.schemas.serving import BestVariantRequest, ServeOut, ServeRequest
from levered_server.services import serving
from levered_server.services.loop_group import LoopGroup

log = logging.getLogger("levered_server")
PREFIX = "/api/v2/optimizations"
router = APIRouter(prefix=PREFIX, tags=["serving"])
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}
_CORS_RAW = [(k.lower().encode(), v.encode()) for k, v in CORS.items()]


async def respond(runtime: Runtime, request: Request, optimization_id: str | None,
                  group: LoopGroup | None = None) -> dict[str, Any]:
    """Serve (with an optimization ID) or best-variant (without one): the response body."""
    data = await read_json(request, allow_empty=optimization_id is not None,
                           allow_text_plain=True)
    parsed = serving.parse_request(data, best_variant=optimization_id is None)
    # Inline on the event loop: with a warm snapshot a committing serve makes no I/O here,
    # and a thread hop costs more than the choice itself (see docs/server.md, bench/serve).
    # Stale snapshots are refreshed and new versions rebuilt behind, never here.
    decision = serving.decide(runtime=runtime,
                              optimization_id=optimization_id or parsed["optimization_id"],
                              request=parsed, record_exposure=optimization_id is not None)
    result = decision.result
    if decision.write is not None:
        # Acknowledge only what is committed (services/serve_log.py): the serves of one loop
        # turn are committed together, by the loop itself on SQLite.
        group = group or LoopGroup(runtime.serve_log)
        try:
            held = await group.commit(decision.write)
        except Exception:  # noqa: BLE001 - the store's error is logged by the writer
            raise Unavailable("Recording the serve failed, so it was not acknowledged; retry "
                              "(the user keeps any variant already stored).") from None
        result = decision.final(held)
    # Built by hand: this is the hot path, and the shape is `ServeOut`.
    return {**result, "meta": {"request_id": request.state.request_id,
                               "organization_id": None}}


class ServeEndpoint:
    """``POST …/serve`` and ``…/best-variant`` as a pure ASGI app: the hot path.

    `app.LeveredApp` sends serving requests here, wrapped only in :class:`RequestContext`
    (request ids, the replica header, rate limits, the last-resort 500), instead of through
    FastAPI: its routing, dependency solving and five middleware layers cost more of the
    event loop than the serving itself. The routes below stay for the OpenAPI document.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._group: LoopGroup | None = None

    @property
    def group(self) -> LoopGroup:
        """The loop's commit group (the serve log exists once the runtime started)."""
        if self._group is None or self._group.serve_log is not self.runtime.serve_log:
            self._group = LoopGroup(self.runtime.serve_log)
        return self._group

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        optimization_id = served_optimization(scope)
        request = Request(scope, receive)
        headers = _CORS_RAW
        try:
            result = await respond(self.runtime, request, optimization_id or None, self.group)
            # As JSONResponse renders it.
            body = json.dumps(result, ensure_ascii=False, allow_nan=False, indent=None,
                              separators=(",", ":")).encode()
            status = 200
        except ApiError as exc:
            if exc.status >= 500 and not exc.quiet:  # as the app's handler logs them
                log.warning("%s request_id=%s: %s", exc.code, request.state.request_id,
                            exc.message)
            body = error_payload(request.state.request_id, exc.code, exc.message, exc.details)
            status = exc.status
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                       for k, v in (exc.headers or {}).items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


def fast_path(runtime: Runtime) -> Any:
    """The ASGI app `LeveredApp` gives serving requests."""
    return RequestContext(ServeEndpoint(runtime), runtime.settings)


def served_optimization(scope: dict[str, Any]) -> str | None:
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
    return JSONResponse(await respond(ctx.runtime, request, None), headers=CORS)


@router.post("/{optimization_id}/serve", operation_id="serve", response_model=ServeOut,
             openapi_extra=body_doc(ServeRequest, required=False))
async def serve(ctx: PublicCtx, optimization_id: str, request: Request) -> Response:
    """Choose a variant for a user and record the exposure."""
    return JSONResponse(await respond(ctx.runtime, request, optimization_id), headers=CORS)


@router.options("/best-variant", include_in_schema=False)
@router.options("/{optimization_id}/serve", include_in_schema=False)
def preflight() -> Response:
    """CORS preflight: any origin, no credentials."""
    return Response(status_code=204, headers=CORS)
