"""Serve request and response schemas (API.md 7); requests are parsed in `services.serving`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from levered_server.schemas.common import Meta


class ServeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    anonymous_id: str | None = None
    context: dict[str, str | bool | None] = {}
    dry_run: bool = False


class BestVariantRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    optimization_id: str
    anonymous_id: str | None = None
    context: dict[str, str | bool | None] = {}


class ServeOut(BaseModel):
    optimization_id: str
    anonymous_id: str
    variant: dict[str, Any]
    variant_number: int
    variant_key: str
    in_holdout: bool
    propensity: float
    model_version: int
    exposure_id: str | None
    meta: Meta
