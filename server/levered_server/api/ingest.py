"""`/api/v2/ingest/*` (API.md 11): API key only, managed warehouse only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from levered_server import limits
from levered_server.api.bodies import SMALL, body_doc, expected_size, read_json
from levered_server.api.deps import Ctx
from levered_server.api.heavy_lane import run_heavy
from levered_server.schemas.ingest import IngestBatch, IngestResult
from levered_server.services import ingest

router = APIRouter(prefix="/api/v2/ingest", tags=["ingestion"])
RESPONSES: dict[int | str, dict[str, Any]] = {207: {"model": IngestResult, "description": "Some events were rejected"}}


async def _ingest(ctx: Ctx, request: Request, kind: str) -> JSONResponse:
    assert ctx.caller is not None
    driver = await run_in_threadpool(ingest.check_caller, runtime=ctx.runtime, caller=ctx.caller)
    # The batch's share of the body budget is held until it is written: its parsed events
    # take several times the bytes of the body (docs/server.md "Limits").
    size = expected_size(request, ingest.MAX_BYTES)
    async with limits.BUDGET.reserve(size if size > SMALL else 0):
        body = await read_json(request, max_bytes=ingest.MAX_BYTES, reject_nul=False, budgeted=True)
        events = ingest.events_of(body)
        del body
        # A large batch validates and writes in the heavy lane: one at a time, paced.
        run = run_heavy if size > SMALL else run_in_threadpool
        result = await run(ingest.ingest, runtime=ctx.runtime, caller=ctx.caller, driver=driver,
                           events=events, kind=kind)
        del events
    body = ctx.wrap(IngestResult, result).model_dump()
    return JSONResponse(body, status_code=207 if result["rejected"] else 200)


@router.post("/exposures", operation_id="ingestExposures", response_model=IngestResult,
             responses=RESPONSES, openapi_extra=body_doc(IngestBatch))
async def ingest_exposures(ctx: Ctx, request: Request) -> JSONResponse:
    """Record exposures the app logged (SDK `onExposure`)."""
    return await _ingest(ctx, request, "exposures")


@router.post("/rewards", operation_id="ingestRewards", response_model=IngestResult,
             responses=RESPONSES, openapi_extra=body_doc(IngestBatch))
async def ingest_rewards(ctx: Ctx, request: Request) -> JSONResponse:
    """Record reward events (conversions, revenue)."""
    return await _ingest(ctx, request, "rewards")
