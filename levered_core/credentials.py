"""Which credential a request carries: ``LEVERED_API_KEY`` or the stored session.

Stored sessions live in ``auth.<env>.json`` (the environment's default URL) or
``auth.<env>.<h>.json`` (any other URL; ``<h>`` = first 12 hex digits of SHA-256 of the
normalized URL), mode 0600, so tokens only ever go to the server that issued them
(``docs/api.md`` 14.4). Each also remembers who logged in (user, organization), so that
``levered auth status`` can list sessions without asking any server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any

from levered_core import config, statefile


@dataclasses.dataclass(frozen=True)
class Session:
    """Tokens from a login, as stored in an auth file.

    ``user`` (``email``, ``name``) and ``organization`` (``id``, ``name``) are what
    ``GET /api/v2/me`` said right after the login; ``None`` in files written before they existed.
    """

    session_token: str
    refresh_token: str | None
    expires_at: str | None
    api_url: str
    user: dict[str, Any] | None = None
    organization: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the auth file's JSON object."""
        return dataclasses.asdict(self)

    def with_identity(self, me: Mapping[str, Any]) -> Session:
        """Return a copy that remembers the user and organization of a ``/api/v2/me`` body."""
        return dataclasses.replace(self, user=_pick(me.get("user"), "email", "name"),
                                   organization=_pick(me.get("organization"), "id", "name"))


def _pick(value: Any, *keys: str) -> dict[str, Any] | None:
    return {key: value.get(key) for key in keys} if isinstance(value, dict) else None


def auth_path(environment: str, api_url: str) -> pathlib.Path:
    """Return the auth file that belongs to ``api_url`` in ``environment``."""
    url = config.normalize_url(api_url)
    if url == config.DEFAULT_URLS[environment]:
        return config.home() / f"auth.{environment}.json"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return config.home() / f"auth.{environment}.{digest}.json"


def load_session(environment: str, api_url: str) -> Session | None:
    """Return the stored session for ``api_url``, or ``None``.

    A file with wider permissions than 0600 is reset to 0600 with a warning; a file whose
    ``api_url`` differs from the resolved URL is ignored (a hash collision or a hand edit).

    :raises ConfigError: the file is not valid JSON.
    """
    path = auth_path(environment, api_url)
    data = statefile.read_json(path)
    if not isinstance(data, dict) or not data.get("session_token"):
        return None
    if statefile.tighten_mode(path):
        print(f"levered: warning: {path} was readable by others; reset to 0600", file=sys.stderr)
    if config.normalize_url(str(data.get("api_url") or "")) != config.normalize_url(api_url):
        return None
    return Session(
        session_token=str(data["session_token"]),
        refresh_token=data.get("refresh_token"),
        expires_at=data.get("expires_at"),
        api_url=config.normalize_url(api_url),
        user=_pick(data.get("user"), "email", "name"),
        organization=_pick(data.get("organization"), "id", "name"),
    )


def stored_sessions() -> list[tuple[str, Session]]:
    """Return every usable stored session as ``(environment, session)``, sorted by URL.

    A file is usable when its name is the one :func:`auth_path` gives for the ``api_url`` it
    holds (what :func:`load_session` would read); others are skipped.

    :raises ConfigError: an auth file is not valid JSON.
    """
    found = []
    for path in sorted(config.home().glob("auth.*.json")):
        environment = path.name.split(".")[1]
        data = statefile.read_json(path)
        if environment not in config.ENVIRONMENTS or not isinstance(data, dict):
            continue
        try:
            api_url = config.normalize_url(str(data.get("api_url") or ""))
        except ValueError:  # a port that is not a number: a hand edit
            continue
        if not api_url.startswith(("http://", "https://")) or auth_path(environment, api_url) != path:
            continue
        session = load_session(environment, api_url)
        if session is not None:
            found.append((environment, session))
    return sorted(found, key=lambda pair: (pair[1].api_url, pair[0]))


def save_session(environment: str, session: Session) -> pathlib.Path:
    """Write ``session`` to its auth file (atomically, mode 0600) and return the path."""
    path = auth_path(environment, session.api_url)
    statefile.write_json(path, session.to_json())
    return path


def delete_session(environment: str, api_url: str) -> bool:
    """Delete the auth file of ``api_url``; return whether there was one."""
    try:
        auth_path(environment, api_url).unlink()
    except FileNotFoundError:
        return False
    return True


def api_key() -> str | None:
    """Return ``LEVERED_API_KEY`` if it is set (stored sessions are then ignored)."""
    value = os.environ.get("LEVERED_API_KEY", "").strip()
    return value or None


def bearer_token(environment: str, api_url: str) -> str | None:
    """Return the token to send: ``LEVERED_API_KEY`` first, else the stored session's."""
    key = api_key()
    if key:
        return key
    session = load_session(environment, api_url)
    return session.session_token if session else None
