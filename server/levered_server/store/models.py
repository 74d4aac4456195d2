"""ORM models. Every organization-owned row carries `organization_id` (`OrgOwned`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from levered_server.clock import UTC


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC: the same values on SQLite and PostgreSQL."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class OrgOwned:
    """Mixin for rows that belong to one organization; sessions filter on it."""

    organization_id: Mapped[str] = mapped_column(String(36), ForeignKey("organizations.id"),
                                                 index=True)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class User(OrgOwned, Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ApiKey(OrgOwned, Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(12))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AccessToken(OrgOwned, Base):
    """Access tokens (`lva_`); issued by the OAuth server (its own issue)."""

    __tablename__ = "access_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Metric(OrgOwned, Base):
    __tablename__ = "metrics"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sql: Mapped[str] = mapped_column(Text)
    anonymous_id_column: Mapped[str] = mapped_column(String(255))
    timestamp_column: Mapped[str] = mapped_column(String(255))
    value_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reward_type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Optimization(OrgOwned, Base):
    __tablename__ = "optimizations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    model_type: Mapped[str] = mapped_column(String(8))
    holdout_percentage: Mapped[int] = mapped_column(Integer)
    reward_metric_id: Mapped[str] = mapped_column(String(36), ForeignKey("metrics.id"))
    training_data_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    excluded_combinations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    variants_count: Mapped[int] = mapped_column(Integer)
    winner_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_optimizations_org_updated", "organization_id", "updated_at"),)


class StatusChange(OrgOwned, Base):
    """Every status transition with its time (2.3; measured lift needs it)."""

    __tablename__ = "status_changes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    optimization_id: Mapped[str] = mapped_column(String(36), ForeignKey("optimizations.id"),
                                                 index=True)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Model(OrgOwned, Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    optimization_id: Mapped[str] = mapped_column(String(36), ForeignKey("optimizations.id"),
                                                 index=True)
    model_type: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    bias: Mapped[dict[str, Any]] = mapped_column(JSON)
    trained_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_run: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Lock(OrgOwned, Base):
    """A sticky assignment (2.4): one per (optimization, anonymous_id)."""

    __tablename__ = "locks"
    optimization_id: Mapped[str] = mapped_column(String(36), ForeignKey("optimizations.id"),
                                                 primary_key=True)
    anonymous_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    variant_number: Mapped[int] = mapped_column(Integer)
    propensity: Mapped[float] = mapped_column(Float)
    model_version: Mapped[int] = mapped_column(Integer)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class WarehouseConnection(OrgOwned, Base):
    __tablename__ = "warehouse_connections"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    dataset_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    exposures_table: Mapped[str | None] = mapped_column(String(600), nullable=True)
    # Fernet token of the credentials JSON; never returned, never logged.
    credentials_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    __table_args__ = (UniqueConstraint("organization_id", name="uq_connection_org"),)
