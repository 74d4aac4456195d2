"""First start (organization, admin, embedded warehouse) and offline API-key creation."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.services.identity import create_api_key as _create_key
from levered_server.services.identity import hash_password
from levered_server.settings import Settings, settings_from_env
from levered_server.store import Store, open_store
from levered_server.store.models import Organization, User, WarehouseConnection


def create_organization(*, store: Store, settings: Settings, name: str,
                        admin_email: str | None = None) -> dict[str, Any]:
    """Create an organization, its embedded warehouse connection and optionally an admin.

    :returns: `{"id", "name", "admin_email", "admin_password"}` (password only when created).
    """
    now = utcnow()
    org = Organization(id=new_id(), name=name, created_at=now)
    password = None
    with store.system_session() as s:
        s.add(org)
        s.flush()
        if admin_email:
            password = secrets.token_urlsafe(12)
            s.add(User(id=new_id(), organization_id=org.id, email=admin_email, name="Admin",
                       password_hash=hash_password(password), created_at=now))
        if settings.embedded_warehouse:
            s.add(WarehouseConnection(id=new_id(), organization_id=org.id, provider="duckdb",
                                      project_id=None, dataset_id="managed_dw",
                                      exposures_table="managed_dw.exposures",
                                      created_at=now, updated_at=now))
    return {"id": org.id, "name": org.name, "admin_email": admin_email,
            "admin_password": password}


def ensure_initialized(*, store: Store, settings: Settings) -> dict[str, Any] | None:
    """On the very first start, create the default organization and its admin user.

    :returns: what was created (including the one-time admin password), or None.
    """
    from levered_server.store.lease import lease

    # Replicas starting together on an empty PostgreSQL: one creates, the others find it.
    with lease(store, "initialize", wait=True):
        with store.system_session() as s:
            if s.scalar(select(func.count()).select_from(Organization)):
                return None
        return create_organization(store=store, settings=settings, name=settings.org_name,
                                   admin_email=settings.admin_email)


def has_database(settings: Settings) -> bool:
    """Whether the data dir (or `database_url`) already holds a server database with an
    organization; never creates anything."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[-1])
        if not path.is_file():
            return False
    from sqlalchemy import inspect

    store = open_store(url, migrate=False)
    try:
        if not inspect(store.engine).has_table(Organization.__tablename__):
            return False
        with store.system_session() as s:
            return bool(s.scalar(select(func.count()).select_from(Organization)))
    finally:
        store.dispose()


def _find_org(store: Store, name: str | None) -> tuple[str, str] | None:
    with store.system_session() as s:
        q = select(Organization).order_by(Organization.created_at, Organization.id)
        if name is not None:
            q = q.where(Organization.name == name)
        org = s.scalars(q).first()
        return None if org is None else (org.id, org.name)


def create_api_key(*, data_dir: str | Path | None = None, database_url: str | None = None,
                   org_name: str | None = None, name: str | None = None,
                   create_org: bool = False, settings: Settings | None = None) -> dict[str, Any]:
    """Create an API key for an organization without a running server.

    Works whether or not the server runs (SQLite WAL / PostgreSQL take the concurrent write).
    The default organization is the oldest one; a first call initializes the data dir.

    :param data_dir: server data directory (default: `$LEVERED_HOME/server`).
    :param database_url: PostgreSQL URL when the server uses one.
    :param org_name: organization by name; None = the default organization.
    :param name: key name (default `cli`).
    :param create_org: create `org_name` when it does not exist.
    :returns: `{"id", "name", "prefix", "secret", "created_at", "organization_id",
              "organization_name", "organization_created"}`.
    :raises LookupError: `org_name` does not exist and `create_org` is false.
    """
    if settings is None:
        overrides: dict[str, Any] = {"database_url": database_url}
        if data_dir is not None:
            overrides["data_dir"] = Path(data_dir).expanduser()
        settings = settings_from_env(**overrides)
    store = open_store(settings.sqlalchemy_url)
    try:
        ensure_initialized(store=store, settings=settings)
        found = _find_org(store, org_name)
        created = False
        if found is None:
            if not create_org or org_name is None:
                raise LookupError(f"no organization named {org_name!r}")
            org = create_organization(store=store, settings=settings, name=org_name)
            found, created = (org["id"], org["name"]), True
        with store.session(found[0]) as s:
            key = _create_key(session=s, name=(name or "cli").strip()[:100] or "cli",
                              user_id=None)
        return {"id": key["id"], "name": key["name"], "prefix": key["prefix"],
                "secret": key["secret"], "created_at": key["created_at"] or iso_s(utcnow()),
                "organization_id": found[0], "organization_name": found[1],
                "organization_created": created}
    finally:
        store.dispose()


def create_user(*, settings: Settings, email: str, password: str, org_name: str | None = None,
                name: str | None = None, create_org: bool = False) -> dict[str, Any]:
    """Create a login user in an organization, or add an existing user to one.

    Works with or without a running server. An existing email gets the organization as a
    further membership (its password is left unchanged); the login page then offers a choice.

    :param org_name: organization by name; None = the default (oldest) organization.
    :param create_org: create `org_name` when it does not exist.
    :returns: `{"id", "email", "organization_id", "organization_name", "created"}`.
    :raises LookupError: `org_name` does not exist and `create_org` is false.
    :raises ValueError: empty email or a password shorter than 8 characters for a new user.
    """
    from levered_server.store.models import Membership

    email = email.strip().lower()
    if "@" not in email:
        raise ValueError("an email address is required")
    store = open_store(settings.sqlalchemy_url)
    try:
        ensure_initialized(store=store, settings=settings)
        found = _find_org(store, org_name)
        if found is None:
            if not create_org or org_name is None:
                raise LookupError(f"no organization named {org_name!r}")
            org = create_organization(store=store, settings=settings, name=org_name)
            found = (org["id"], org["name"])
        with store.system_session() as s:
            user = s.scalars(select(User).where(func.lower(User.email) == email)).first()
            created = user is None
            if user is None:
                if len(password) < 8:
                    raise ValueError("the password needs at least 8 characters")
                user = User(id=new_id(), organization_id=found[0], email=email,
                            name=(name or email.split("@")[0]).strip()[:200],
                            password_hash=hash_password(password), created_at=utcnow())
                s.add(user)
            elif user.organization_id != found[0] and s.get(
                    Membership, (user.id, found[0])) is None:
                s.add(Membership(user_id=user.id, organization_id=found[0], created_at=utcnow()))
            s.flush()
            return {"id": user.id, "email": user.email, "organization_id": found[0],
                    "organization_name": found[1], "created": created}
    finally:
        store.dispose()
