"""`/api/v2/models` (API.md 8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from levered_server.api.bodies import body_doc, read_json
from levered_server.api.deps import Ctx
from levered_server.api.params import parse_bool
from levered_server.schemas.common import Deleted, validate
from levered_server.schemas.optimizations import ModelList, ModelOut, ModelState, TrainRequest, TrainResult
from levered_server.services import models

router = APIRouter(prefix="/api/v2/models", tags=["models"])


@router.get("", operation_id="listModels", response_model=ModelList)
def list_models(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=100)] = 10,
                include_archived: Annotated[str | None, Query()] = None) -> ModelList:
    """List models, most recently updated first."""
    items = models.list_all(runtime=ctx.runtime, org_id=ctx.org_id, limit=limit,
                            include_archived=parse_bool("include_archived", include_archived,
                                                        False))
    return ctx.wrap(ModelList, {"models": items})


@router.get("/{model_id}", operation_id="getModel", response_model=ModelOut)
def get_model(ctx: Ctx, model_id: str) -> ModelOut:
    """Show one model."""
    return ctx.wrap(ModelOut, models.get(runtime=ctx.runtime, org_id=ctx.org_id,
                                         model_id=model_id))


@router.get("/{model_id}/state", operation_id="getModelState", response_model=ModelState)
def get_model_state(ctx: Ctx, model_id: str) -> ModelState:
    """The current version's posterior per servable variant."""
    return ctx.wrap(ModelState, models.state(runtime=ctx.runtime, org_id=ctx.org_id,
                                             model_id=model_id))


@router.post("/{model_id}/train", operation_id="trainModel", response_model=TrainResult,
             openapi_extra=body_doc(TrainRequest, required=False))
async def train_model(ctx: Ctx, model_id: str, request: Request) -> TrainResult:
    """Train now (synchronous)."""
    body = validate(TrainRequest, await read_json(request, allow_empty=True))
    result = await run_in_threadpool(models.train, runtime=ctx.runtime, org_id=ctx.org_id,
                                     model_id=model_id, body=body)
    return ctx.wrap(TrainResult, result)


@router.delete("/{model_id}", operation_id="deleteModel", response_model=Deleted)
def delete_model(ctx: Ctx, model_id: str) -> Deleted:
    """Soft-delete a model; its optimization cannot serve until it gets a new one."""
    mid = models.delete(runtime=ctx.runtime, org_id=ctx.org_id, model_id=model_id)
    return ctx.wrap(Deleted, {"id": mid, "deleted": True})
