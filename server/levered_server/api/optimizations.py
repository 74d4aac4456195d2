"""`/api/v2/optimizations` (API.md 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import Ctx
from levered_server.api.params import parse_bool
from levered_server.schemas.optimizations import (
    ModelOut,
    ObservationList,
    OptimizationCreate,
    OptimizationList,
    OptimizationOut,
    OptimizationUpdate,
)
from levered_server.schemas.results import Results
from levered_server.services import attribution, models, optimizations, results

router = APIRouter(prefix="/api/v2/optimizations", tags=["optimizations"])


@router.get("", operation_id="listOptimizations", response_model=OptimizationList)
def list_optimizations(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=100)] = 10,
                       order_by: Annotated[str, Query()] = "updated_at",
                       include_archived: Annotated[str | None, Query()] = None,
                       offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> OptimizationList:
    """List optimizations, newest first."""
    items = optimizations.list_all(
        runtime=ctx.runtime, org_id=ctx.org_id, limit=limit, offset=offset, order_by=order_by,
        include_archived=parse_bool("include_archived", include_archived, False))
    return ctx.wrap(OptimizationList, {"optimizations": items})


@router.post("", operation_id="createOptimization", status_code=201,
             response_model=OptimizationOut, openapi_extra=body_doc(OptimizationCreate))
async def create_optimization(ctx: Ctx, request: Request) -> OptimizationOut:
    """Create a live optimization with an untrained model."""
    raw = await read_json(request)
    from starlette.concurrency import run_in_threadpool

    data = await run_in_threadpool(optimizations.create_from_json, runtime=ctx.runtime,
                                   org_id=ctx.org_id, raw=raw)
    return ctx.wrap(OptimizationOut, data)


@router.get("/{optimization_id}", operation_id="getOptimization",
            response_model=OptimizationOut)
def get_optimization(ctx: Ctx, optimization_id: str) -> OptimizationOut:
    """Show one optimization."""
    return ctx.wrap(OptimizationOut, optimizations.get(
        runtime=ctx.runtime, org_id=ctx.org_id, optimization_id=optimization_id))


@router.patch("/{optimization_id}", operation_id="updateOptimization",
              response_model=OptimizationOut, openapi_extra=body_doc(OptimizationUpdate))
async def update_optimization(ctx: Ctx, optimization_id: str,
                              request: Request) -> OptimizationOut:
    """Change status or name."""
    body = optimizations.parse_update(await read_json(request, allow_empty=True))
    from starlette.concurrency import run_in_threadpool

    data = await run_in_threadpool(optimizations.update, runtime=ctx.runtime,
                                   org_id=ctx.org_id, optimization_id=optimization_id,
                                   body=body)
    return ctx.wrap(OptimizationOut, data)


@router.get("/{optimization_id}/results", operation_id="getResults", response_model=Results)
def get_results(ctx: Ctx, optimization_id: str) -> Results:
    """Lifetime results: counts, measured lift, SRM, time series, posterior summaries."""
    return ctx.wrap(Results, results.results(runtime=ctx.runtime, org_id=ctx.org_id,
                                             optimization_id=optimization_id))


@router.get("/{optimization_id}/observations", operation_id="listObservations",
            response_model=ObservationList)
def list_observations(ctx: Ctx, optimization_id: str,
                      page: Annotated[int, Query(ge=1)] = 1,
                      size: Annotated[int, Query(ge=1, le=100)] = 20) -> ObservationList:
    """Exposures with their attributed reward, newest first."""
    return ctx.wrap(ObservationList, attribution.observations(
        runtime=ctx.runtime, org_id=ctx.org_id, optimization_id=optimization_id, page=page,
        size=size))


@router.post("/{optimization_id}/model", operation_id="createModel", status_code=201,
             response_model=ModelOut)
def create_model(ctx: Ctx, optimization_id: str) -> ModelOut:
    """Give an optimization whose model was deleted a fresh untrained one."""
    return ctx.wrap(ModelOut, models.create_for(runtime=ctx.runtime, org_id=ctx.org_id,
                                                optimization_id=optimization_id))
