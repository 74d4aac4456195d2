"""`/api/v2/warehouse` connections, status, tables, query (API.md 10)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from levered_server.api.bodies import body_doc, json_body, read_json
from levered_server.api.cancellable import run_cancellable
from levered_server.api.deps import Ctx
from levered_server.schemas.warehouse import (
    ColumnList,
    ConnectionCreate,
    ConnectionGet,
    ConnectionOut,
    ConnectionTest,
    QueryRequest,
    QueryResult,
    TableList,
    TablePreview,
    WarehouseStatus,
)
from levered_server.services import connections, discovery

router = APIRouter(prefix="/api/v2/warehouse", tags=["warehouse"])


@router.post("/connections", operation_id="saveConnection", response_model=ConnectionOut,
             status_code=201, openapi_extra=body_doc(ConnectionCreate))
async def save_connection(ctx: Ctx, request: Request) -> JSONResponse:
    """Create or replace the organization's warehouse connection (tested first)."""
    data = await read_json(request)
    conn, created = await run_in_threadpool(connections.save, runtime=ctx.runtime,
                                            org_id=ctx.org_id, data=data)
    return JSONResponse(ctx.wrap(ConnectionOut, conn).model_dump(),
                        status_code=201 if created else 200)


@router.get("/connections", operation_id="getConnection", response_model=ConnectionGet)
def get_connection(ctx: Ctx) -> ConnectionGet:
    """The organization's connection (credentials never included)."""
    return ctx.wrap(ConnectionGet, {"connection": connections.get(runtime=ctx.runtime,
                                                                  org_id=ctx.org_id)})


@router.post("/connections/test", operation_id="testConnection", response_model=ConnectionTest,
             openapi_extra=body_doc(ConnectionCreate, required=False))
async def test_connection(ctx: Ctx, request: Request) -> ConnectionTest:
    """Test the saved connection, or the given settings without saving them."""
    data = await read_json(request, allow_empty=True)
    result = await run_in_threadpool(connections.test, runtime=ctx.runtime, org_id=ctx.org_id,
                                     data=data)
    return ctx.wrap(ConnectionTest, result)


@router.get("/status", operation_id="warehouseStatus", response_model=WarehouseStatus)
def warehouse_status(ctx: Ctx) -> WarehouseStatus:
    """Check the saved connection with a trivial query."""
    return ctx.wrap(WarehouseStatus, connections.status(runtime=ctx.runtime, org_id=ctx.org_id))


@router.get("/tables", operation_id="listTables", response_model=TableList)
def list_tables(ctx: Ctx) -> TableList:
    """Tables and views of the connection's dataset."""
    return ctx.wrap(TableList, discovery.tables(runtime=ctx.runtime, org_id=ctx.org_id))


@router.get("/tables/{table}/columns", operation_id="listColumns", response_model=ColumnList)
def list_columns(ctx: Ctx, table: str) -> ColumnList:
    """Columns of a table."""
    return ctx.wrap(ColumnList, discovery.columns(runtime=ctx.runtime, org_id=ctx.org_id,
                                                  table=table))


@router.get("/tables/{table}/preview", operation_id="previewTable", response_model=TablePreview)
async def preview_table(ctx: Ctx, request: Request, table: str,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> TablePreview:
    """The first rows of a table."""
    found = await run_cancellable(request, lambda cancel: discovery.preview(
        runtime=ctx.runtime, org_id=ctx.org_id, table=table, limit=limit, cancel=cancel))
    return ctx.wrap(TablePreview, found)


@router.post("/query", operation_id="runQuery", response_model=QueryResult,
             openapi_extra=body_doc(QueryRequest))
async def run_query(ctx: Ctx, request: Request,
                    body: Annotated[QueryRequest, Depends(json_body(QueryRequest))]
                    ) -> QueryResult:
    """Run one read-only query."""
    found = await run_cancellable(request, lambda cancel: discovery.query(
        runtime=ctx.runtime, org_id=ctx.org_id, sql=body.sql, limit=body.limit, cancel=cancel))
    return ctx.wrap(QueryResult, found)
