"""Schemas of the extension endpoints beyond the reference: progress, lift history,
guardrails, report data, metric usage (docs/api.md 6.9–6.12, 9.7)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from levered_server.schemas.common import Meta


class VariantProgress(BaseModel):
    number: int
    variant_key: str
    exposures: int
    users: int
    traffic_share: float | None
    prob_best: float | None
    allocation: float | None


class Progress(BaseModel):
    optimization_id: str
    status: str
    generated_at: str
    started_at: str | None
    days_running: float
    model_version: int
    trained_at: str | None
    exposures: int
    users: int
    holdout: dict[str, int]
    variants: list[VariantProgress]
    current_best: dict[str, Any] | None
    best_traffic_share: float | None
    estimated_progress: float | None
    policy_progress: float | None
    meta: Meta


class LiftPoint(BaseModel):
    date: str
    model_id: str
    model_version: int
    trained_at: str | None
    observations: int
    policy_lift_percent: float | None
    policy_lift_interval: list[float] | None
    best_number: int | None
    best_lift_percent: float | None
    best_lift_interval: list[float] | None
    best_prob: float | None
    estimated_progress: float | None


class LiftHistory(BaseModel):
    optimization_id: str
    generated_at: str
    points: list[LiftPoint]
    meta: Meta


class GuardrailStatus(BaseModel):
    metric_id: str
    metric_name: str | None
    direction: str
    tolerance: float
    status: str | None
    holdout: dict[str, Any] | None
    optimized: dict[str, Any] | None
    lift_percent: float | None
    lift_ci: list[float] | None
    p_value: float | None
    window: dict[str, Any] | None


class Guardrails(BaseModel):
    optimization_id: str
    status: str
    auto_stop: bool
    stop_reason: dict[str, Any] | None
    test: str
    alpha: float
    generated_at: str
    guardrails: list[GuardrailStatus]
    meta: Meta


class ReportData(BaseModel):
    format: str
    generated_at: str
    optimization: dict[str, Any]
    reward_metric: dict[str, Any]
    variants: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    state: dict[str, Any]
    guardrails: dict[str, Any]
    lift_history: list[LiftPoint]
    meta: Meta


class MetricUsage(BaseModel):
    metric_id: str
    metric_name: str
    reward_of: list[dict[str, Any]]
    guardrail_of: list[dict[str, Any]]
    meta: Meta
