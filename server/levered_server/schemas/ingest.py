"""Ingestion schemas (API.md 11); events are validated one by one in `services.ingest`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from levered_server.schemas.common import Meta


class IngestBatch(BaseModel):
    events: list[dict[str, Any]]


class RejectedEvent(BaseModel):
    index: int
    code: str
    message: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
    meta: Meta
