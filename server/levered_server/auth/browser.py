"""The login pages' state: session cookies, CSRF tokens, password checks, throttling.

Throttling (API.md 4, issue 5): at most `MAX_FAILURES_PER_ACCOUNT` failed logins per email
and `MAX_FAILURES_PER_IP` per client IP within `LOCKOUT`; past that, attempts are refused
without checking the password until the oldest failure in the window is `LOCKOUT` old.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from levered_server.clock import new_id, utcnow
from levered_server.services.identity import dummy_password_hash, hash_secret, verify_password
from levered_server.store import Store
from levered_server.store.models import BrowserSession, DeviceCode, LoginFailure, Membership, Organization, User

COOKIE = "levered_session"
SESSION_TTL = dt.timedelta(hours=12)
LOCKOUT = dt.timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_IP = 20


@dataclasses.dataclass(frozen=True)
class PageSession:
    """A browser session: the cookie value (only its hash is stored) and its CSRF token."""

    cookie: str
    csrf_token: str
    user_id: str | None
    is_new: bool = False


def load_session(store: Store, cookie: str | None) -> PageSession:
    """The live session of `cookie`, or a new anonymous one (to be set as the cookie)."""
    now = utcnow()
    with store.system_session() as s:
        if cookie:
            row = s.scalars(select(BrowserSession).where(
                BrowserSession.session_hash == hash_secret(cookie))).first()
            if row is not None and row.expires_at > now:
                return PageSession(cookie, row.csrf_token, row.user_id)
        s.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
        return _create(s, user_id=None)


def _create(s: Session, user_id: str | None) -> PageSession:
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    s.add(BrowserSession(id=new_id(), session_hash=hash_secret(cookie),
                         csrf_token=csrf, user_id=user_id, created_at=now,
                         expires_at=now + SESSION_TTL))
    return PageSession(cookie, csrf, user_id, is_new=True)


def csrf_ok(session: PageSession, submitted: str | None) -> bool:
    """Whether a form carried this session's CSRF token (constant-time comparison)."""
    return bool(submitted) and not session.is_new and secrets.compare_digest(
        session.csrf_token, submitted or "")


def sign_in(store: Store, old: PageSession, user_id: str) -> PageSession:
    """Replace the anonymous session by a fresh one for `user_id` (no session fixation)."""
    with store.system_session() as s:
        s.execute(delete(BrowserSession).where(
            BrowserSession.session_hash == hash_secret(old.cookie)))
        return _create(s, user_id=user_id)


def _failures(s: Session, key: str, since: dt.datetime) -> int:
    q = select(func.count()).select_from(LoginFailure).where(LoginFailure.key == key,
                                                              LoginFailure.failed_at > since)
    return int(s.scalar(q) or 0)


def check_password(store: Store, email: str, password: str, ip: str) -> str | None:
    """Return the user id for a correct email and password; None when wrong or throttled.

    :raises PermissionError: too many failures for this account or this IP.
    """
    email = email.strip().lower()
    now = utcnow()
    keys = (f"email:{email}", f"ip:{ip}")
    with store.system_session() as s:
        if _failures(s, keys[0], now - LOCKOUT) >= MAX_FAILURES_PER_ACCOUNT or \
                _failures(s, keys[1], now - LOCKOUT) >= MAX_FAILURES_PER_IP:
            raise PermissionError("too many failed logins")
        user = s.scalars(select(User).where(func.lower(User.email) == email)).first()
    # An unknown email is checked against a dummy hash of today's cost: both cost one scrypt.
    ok = verify_password(password, user.password_hash if user and user.password_hash
                         else dummy_password_hash())
    with store.system_session() as s:
        if ok and user is not None and user.password_hash:
            s.execute(delete(LoginFailure).where(LoginFailure.key == keys[0]))
            return user.id
        s.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - LOCKOUT))
        for key in keys:
            s.add(LoginFailure(id=new_id(), key=key, failed_at=now))
    return None


def user_email(store: Store, user_id: str) -> str:
    """The email of a user."""
    with store.system_session() as s:
        user = s.get(User, user_id)
        return user.email if user else "?"


def organizations_of(store: Store, user_id: str) -> list[tuple[str, str]]:
    """(id, name) of every organization the user belongs to, by name."""
    with store.system_session() as s:
        user = s.get(User, user_id)
        if user is None:
            return []
        ids = {user.organization_id} | set(s.scalars(select(Membership.organization_id).where(
            Membership.user_id == user_id)).all())
        orgs = s.scalars(select(Organization).where(Organization.id.in_(ids))).all()
        return sorted(((o.id, o.name) for o in orgs), key=lambda o: (o[1], o[0]))


def pending_device(store: Store, user_code: str) -> bool:
    """Whether `user_code` (normalized) names a pending, unexpired device authorization."""
    with store.system_session() as s:
        row = s.scalars(select(DeviceCode).where(DeviceCode.user_code == user_code)).first()
        return row is not None and row.status == "pending" and row.expires_at > utcnow()


def decide_device(store: Store, user_code: str, user_id: str, org_id: str | None,
                  approve: bool) -> bool:
    """Approve (for a user and organization) or deny a pending device authorization."""
    with store.system_session() as s:
        row = s.scalars(select(DeviceCode).where(DeviceCode.user_code == user_code)).first()
        if row is None or row.status != "pending" or row.expires_at <= utcnow():
            return False
        row.status = "approved" if approve else "denied"
        row.user_id, row.organization_id = user_id, org_id
        return True
