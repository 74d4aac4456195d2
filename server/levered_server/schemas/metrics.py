"""Metric schemas (API.md 9)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from levered_server.schemas.common import Meta, RequestModel

Column = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class ColumnMappingIn(RequestModel):
    anonymous_id: Column
    timestamp: Column
    value: Column | None = None
    reward_type: Literal["bool", "numeric"] | None = None


class MetricCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    sql: str = Field(min_length=1, max_length=100_000)
    column_mapping: ColumnMappingIn

    @field_validator("name", mode="before")
    @classmethod
    def _trim(cls, v: object) -> object:
        return v.strip() if isinstance(v, str) else v


class ColumnMapping(BaseModel):
    anonymous_id: str
    timestamp: str
    value: str | None
    reward_type: Literal["bool", "numeric"]


class MetricPublic(BaseModel):
    id: str
    name: str
    sql: str
    column_mapping: ColumnMapping
    created_at: str
    updated_at: str | None


class MetricOut(MetricPublic):
    meta: Meta


class MetricList(BaseModel):
    metrics: list[MetricPublic]
    meta: Meta


class ResultColumn(BaseModel):
    name: str
    type: str


class MetricPreview(BaseModel):
    metric_id: str
    start_date: str
    column_mapping: ColumnMapping
    columns: list[ResultColumn]
    rows: list[dict[str, object]]
    row_count: int
    truncated: bool
    meta: Meta
