"""`/api/v2/optimizations` (API.md 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import Ctx
from levered_server.api.params import parse_bool
from levered_server.schemas.insights import Guardrails, LiftHistory, Progress, ReportData
from levered_server.schemas.optimizations import (
    ModelOut,
    ObservationList,
    OptimizationCreate,
    OptimizationList,
    OptimizationOut,
    OptimizationUpdate,
)
from levered_server.schemas.results import Results
from levered_server.services import (
    attribution,
    guardrails,
    lift_history,
    models,
    optimizations,
    progress,
    report,
    results,
)

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


# --- Extensions beyond the reference (docs/api.md 6.9-6.12). ---

_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
#: These read the warehouse, as results do (app.py declares the rest of the envelope's statuses).
WAREHOUSE_ERRORS: dict[int | str, dict[str, object]] = {
    409: {"description": "warehouse_not_connected", "content": _ENVELOPE},
    422: {"description": "invalid_metric_sql: a metric's SQL failed", "content": _ENVELOPE},
    502: {"description": "warehouse_error: the warehouse failed, was unreachable or timed out",
          "content": _ENVELOPE}}


@router.get("/{optimization_id}/progress", operation_id="getProgress", response_model=Progress,
            responses=WAREHOUSE_ERRORS)
def get_progress(ctx: Ctx, optimization_id: str) -> Progress:
    """Days running, exposures and users per variant, traffic on the best, estimated progress."""
    return ctx.wrap(Progress, progress.progress(runtime=ctx.runtime, org_id=ctx.org_id,
                                                optimization_id=optimization_id))


@router.get("/{optimization_id}/lift-history", operation_id="getLiftHistory",
            response_model=LiftHistory)
def get_lift_history(ctx: Ctx, optimization_id: str,
                     days: Annotated[int, Query(ge=1, le=366)] = 366) -> LiftHistory:
    """The model's daily lift estimates, one point per day a training run published."""
    return ctx.wrap(LiftHistory, lift_history.history(
        runtime=ctx.runtime, org_id=ctx.org_id, optimization_id=optimization_id, days=days))


@router.get("/{optimization_id}/guardrails", operation_id="getGuardrails",
            response_model=Guardrails, responses=WAREHOUSE_ERRORS)
def get_guardrails(ctx: Ctx, optimization_id: str,
                   evaluate: Annotated[str | None, Query()] = None) -> Guardrails:
    """Each guardrail: bandit traffic vs holdout, lift, interval, always-valid p-value, status."""
    return ctx.wrap(Guardrails, guardrails.report(
        runtime=ctx.runtime, org_id=ctx.org_id, optimization_id=optimization_id,
        evaluate=parse_bool("evaluate", evaluate, True)))


@router.get("/{optimization_id}/report-data", operation_id="getReportData",
            response_model=ReportData, responses=WAREHOUSE_ERRORS)
def get_report_data(ctx: Ctx, optimization_id: str) -> ReportData:
    """Design, daily counts per arm, state, guardrails and lift history in one pack."""
    return ctx.wrap(ReportData, report.report_data(runtime=ctx.runtime, org_id=ctx.org_id,
                                                   optimization_id=optimization_id))
