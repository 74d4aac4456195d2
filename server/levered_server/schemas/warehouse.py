"""Warehouse connection, discovery and query schemas (API.md 10)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from levered_server.schemas.common import Meta, RequestModel
from levered_server.schemas.metrics import ResultColumn


class ConnectionCreate(BaseModel):
    """Documented shape; fields are checked by the provider's driver in `services.connections`
    (a server accepts the providers of its installed drivers, docs/warehouse-drivers.md)."""

    provider: Literal["duckdb", "postgres", "bigquery", "snowflake"]
    project_id: str | None = None
    dataset_id: str | None = None
    credentials: dict[str, Any] | None = None
    exposures_table: str | None = None


class ConnectionPublic(BaseModel):
    id: str
    provider: str
    project_id: str | None
    dataset_id: str | None
    exposures_table: str | None
    managed: bool
    # Extension: what runs the SQL; the managed warehouse is `duckdb` or `postgres`.
    engine: str
    # Extensions: the warehouse driver serving the connection (null: none installed).
    driver: str | None
    driver_version: str | None
    created_at: str
    updated_at: str


class ConnectionOut(ConnectionPublic):
    meta: Meta


class ConnectionGet(BaseModel):
    connection: ConnectionPublic | None
    meta: Meta


class ConnectionTest(BaseModel):
    ok: bool
    provider: str
    latency_ms: int
    warehouse_message: str | None
    meta: Meta


class WarehouseStatus(BaseModel):
    connected: bool
    provider: str | None
    managed: bool | None
    engine: str | None  # extension, as in ConnectionPublic
    driver: str | None  # extensions, as in ConnectionPublic
    driver_version: str | None
    connection_id: str | None
    project_id: str | None
    dataset_id: str | None
    exposures_table: str | None
    latency_ms: int | None
    warehouse_message: str | None
    checked_at: str
    meta: Meta


class TableInfo(BaseModel):
    name: str
    type: Literal["table", "view"]
    row_count: int | None


class TableList(BaseModel):
    dataset_id: str
    tables: list[TableInfo]
    meta: Meta


class ColumnInfo(BaseModel):
    name: str
    type: str
    nullable: bool


class ColumnList(BaseModel):
    table: str
    columns: list[ColumnInfo]
    meta: Meta


class TablePreview(BaseModel):
    table: str
    columns: list[ResultColumn]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool
    meta: Meta


class QueryRequest(RequestModel):
    sql: str = Field(min_length=1, max_length=100_000)
    limit: int = Field(100, ge=1, le=10_000)


class QueryResult(BaseModel):
    columns: list[ResultColumn]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool
    elapsed_ms: int
    meta: Meta
