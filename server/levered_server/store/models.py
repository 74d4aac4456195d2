"""ORM models. Every organization-owned row carries `organization_id` (`OrgOwned`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
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
    # Extension (services/guardrails.py): stop when a guardrail is violated, and why it stopped.
    auto_stop: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    stop_reason: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    __table_args__ = (Index("ix_optimizations_org_updated", "organization_id", "updated_at"),)


class Guardrail(OrgOwned, Base):
    """A metric an optimization must not harm (extension, services/guardrails.py)."""

    __tablename__ = "guardrails"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    optimization_id: Mapped[str] = mapped_column(String(36), ForeignKey("optimizations.id"),
                                                 index=True)
    metric_id: Mapped[str] = mapped_column(String(36), ForeignKey("metrics.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # higher | lower: which way is better
    tolerance: Mapped[float] = mapped_column(Float)  # relative harm allowed, 0.02 = 2 %
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    __table_args__ = (UniqueConstraint("optimization_id", "metric_id", name="uq_guardrail_metric"),)


class LiftEstimate(OrgOwned, Base):
    """The model's lift estimates of one day, from the last training run that day
    (extension, services/lift_history.py)."""

    __tablename__ = "lift_history"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    optimization_id: Mapped[str] = mapped_column(String(36), ForeignKey("optimizations.id"))
    day: Mapped[str] = mapped_column(String(10))  # UTC date of the run, YYYY-MM-DD
    model_id: Mapped[str] = mapped_column(String(36))
    model_version: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    observations: Mapped[int] = mapped_column(Integer)
    # {policy_lift_percent, policy_lift_interval, best_number, best_lift_percent,
    #  best_lift_interval, best_prob, estimated_progress}: numbers or null.
    estimate: Mapped[dict[str, Any]] = mapped_column(JSON)
    __table_args__ = (UniqueConstraint("optimization_id", "day", name="uq_lift_history_day"),)


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


# --- OAuth login (API.md 4): read and written only by `levered_server.auth`. ---


class Membership(Base):
    """A user's access to an organization besides the one in `users.organization_id`."""

    __tablename__ = "memberships"
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), ForeignKey("organizations.id"),
                                                 primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TokenFamily(Base):
    """One login: every token descended from it is revoked together (4.1)."""

    __tablename__ = "oauth_token_families"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), ForeignKey("organizations.id"),
                                                 index=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(100))
    grant_type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IssuedAccessToken(Base):
    """Which login an access token descends from."""

    __tablename__ = "oauth_issued_access_tokens"
    access_token_id: Mapped[str] = mapped_column(String(36), ForeignKey("access_tokens.id"),
                                                 primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), ForeignKey("oauth_token_families.id"),
                                           index=True)


class RefreshToken(Base):
    """A refresh token (`lvr_`), hashed; `rotated_at` is set when it is used once."""

    __tablename__ = "oauth_refresh_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), ForeignKey("oauth_token_families.id"),
                                           index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthorizationCode(Base):
    """An authorization code, hashed, single use, bound to redirect URI and PKCE challenge."""

    __tablename__ = "oauth_authorization_codes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(300))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    scope: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    organization_id: Mapped[str] = mapped_column(String(36), ForeignKey("organizations.id"))
    family_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeviceCode(Base):
    """A device authorization (RFC 8628): `status` pending → approved | denied → used."""

    __tablename__ = "oauth_device_codes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code: Mapped[str] = mapped_column(String(8), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    interval: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BrowserSession(Base):
    """A session of the login pages: cookie hashed, CSRF token, user once logged in."""

    __tablename__ = "browser_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class LoginFailure(Base):
    """A failed login, by account (`email:`) and by client IP (`ip:`), for throttling."""

    __tablename__ = "login_failures"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_login_failures_key_time", "key", "failed_at"),)


class ServerMeta(Base):
    """Server-wide values by name, e.g. the secret-key check value (`keycheck.py`)."""

    __tablename__ = "server_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ExposureOutbox(Base):
    """Served exposures, committed in the serve's transaction with its sticky lock and moved to
    the organization's warehouse behind it (`services/outbox.py`); the payload is the row as
    JSON."""

    __tablename__ = "exposure_outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    payload: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_exposure_outbox_org_id", "organization_id", "id"),)
