"""`/api/v2/warehouse/metrics` (API.md 9)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from levered_server.api.bodies import body_doc, json_body
from levered_server.api.cancellable import run_cancellable
from levered_server.api.deps import Ctx
from levered_server.api.params import parse_start_date
from levered_server.clock import utcnow
from levered_server.schemas.common import Deleted
from levered_server.schemas.insights import MetricUsage
from levered_server.schemas.metrics import MetricCreate, MetricList, MetricOut, MetricPreview
from levered_server.services import guardrails, metrics

router = APIRouter(prefix="/api/v2/warehouse/metrics", tags=["metrics"])


@router.post("", operation_id="createMetric", status_code=201, response_model=MetricOut,
             openapi_extra=body_doc(MetricCreate))
def create_metric(ctx: Ctx, body: Annotated[MetricCreate, Depends(json_body(MetricCreate))]
                  ) -> MetricOut:
    """Create a metric after a dry run of its SQL against the warehouse."""
    return ctx.wrap(MetricOut, metrics.create(runtime=ctx.runtime, org_id=ctx.org_id, body=body))


@router.get("", operation_id="listMetrics", response_model=MetricList)
def list_metrics(ctx: Ctx) -> MetricList:
    """List metrics, newest first."""
    return ctx.wrap(MetricList, {"metrics": metrics.list_all(runtime=ctx.runtime,
                                                             org_id=ctx.org_id)})


@router.get("/{metric_id}", operation_id="getMetric", response_model=MetricOut)
def get_metric(ctx: Ctx, metric_id: str) -> MetricOut:
    """Show one metric."""
    return ctx.wrap(MetricOut, metrics.get(runtime=ctx.runtime, org_id=ctx.org_id,
                                           metric_id=metric_id))


@router.get("/{metric_id}/preview", operation_id="previewMetric", response_model=MetricPreview)
async def preview_metric(ctx: Ctx, request: Request, metric_id: str,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 10,
                         start_date: Annotated[str | None, Query()] = None) -> MetricPreview:
    """Run the metric's SQL and return a sample of its rows."""
    start = parse_start_date("start_date", start_date, utcnow() - dt.timedelta(days=7))
    found = await run_cancellable(request, lambda cancel: metrics.preview(
        runtime=ctx.runtime, org_id=ctx.org_id, metric_id=metric_id, limit=limit,
        start_date=start, cancel=cancel))
    return ctx.wrap(MetricPreview, found)


@router.get("/{metric_id}/usage", operation_id="getMetricUsage", response_model=MetricUsage)
def metric_usage(ctx: Ctx, metric_id: str) -> MetricUsage:
    """Where a metric is used: reward of which optimizations, guardrail of which (extension)."""
    return ctx.wrap(MetricUsage, guardrails.usage(runtime=ctx.runtime, org_id=ctx.org_id,
                                                  metric_id=metric_id))


@router.delete("/{metric_id}", operation_id="deleteMetric", response_model=Deleted)
def delete_metric(ctx: Ctx, metric_id: str) -> Deleted:
    """Soft-delete a metric that no live optimization uses."""
    mid = metrics.delete(runtime=ctx.runtime, org_id=ctx.org_id, metric_id=metric_id)
    return ctx.wrap(Deleted, {"id": mid, "deleted": True})
