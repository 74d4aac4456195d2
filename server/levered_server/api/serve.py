"""Public serving endpoints with open CORS (API.md 7, 12.2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import PublicCtx
from levered_server.schemas.serving import BestVariantRequest, ServeOut, ServeRequest
from levered_server.services import serving

router = APIRouter(prefix="/api/v2/optimizations", tags=["serving"])
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}


async def _serve(ctx: PublicCtx, request: Request, optimization_id: str | None) -> Response:
    data = await read_json(request, allow_empty=optimization_id is not None,
                           allow_text_plain=True)
    parsed = serving.parse_request(data, best_variant=optimization_id is None)
    # Inline on the event loop: with a warm snapshot the only I/O is one indexed lock
    # lookup; a thread hop costs more than that (see docs/server.md, bench/serve). Stale
    # snapshots are refreshed and new versions rebuilt behind, never here (serve_cache.py).
    result = serving.decide(runtime=ctx.runtime,
                            optimization_id=optimization_id or parsed["optimization_id"],
                            request=parsed, record_exposure=optimization_id is not None)
    # Built by hand: this is the hot path, and the shape is `ServeOut`.
    return JSONResponse({**result, "meta": ctx.meta}, headers=CORS)


@router.post("/best-variant", operation_id="bestVariant", response_model=ServeOut,
             openapi_extra=body_doc(BestVariantRequest))
async def best_variant(ctx: PublicCtx, request: Request) -> Response:
    """Choose a variant for an SDK (writes the lock, records no exposure)."""
    return await _serve(ctx, request, None)


@router.post("/{optimization_id}/serve", operation_id="serve", response_model=ServeOut,
             openapi_extra=body_doc(ServeRequest, required=False))
async def serve(ctx: PublicCtx, optimization_id: str, request: Request) -> Response:
    """Choose a variant for a user and record the exposure."""
    return await _serve(ctx, request, optimization_id)


@router.options("/best-variant", include_in_schema=False)
@router.options("/{optimization_id}/serve", include_in_schema=False)
def preflight() -> Response:
    """CORS preflight: any origin, no credentials."""
    return Response(status_code=204, headers=CORS)
