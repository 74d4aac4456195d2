"""Which credential a request carries: ``LEVERED_API_KEY`` or the stored session.

Stored sessions live in ``auth.<env>.json`` (the environment's default URL) or
``auth.<env>.<h>.json`` (any other URL; ``<h>`` = first 12 hex digits of SHA-256 of the
normalized URL), mode 0600, so tokens only ever go to the server that issued them
(``reference/API.md`` 14.4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import sys
from typing import Any

from levered_core import config, statefile


@dataclasses.dataclass(frozen=True)
class Session:
    """Tokens from a login, as stored in an auth file."""

    session_token: str
    refresh_token: str | None
    expires_at: str | None
    api_url: str

    def to_json(self) -> dict[str, Any]:
        """Return the auth file's JSON object."""
        return dataclasses.asdict(self)


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
    )


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
