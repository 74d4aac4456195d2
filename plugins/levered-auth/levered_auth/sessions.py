"""``levered auth status``: the stored login sessions and the credential commands use now.

It reads only the auth files (no request), like ``kubectl config get-contexts``: what each
session was for is remembered at login (``GET /api/v2/me``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from levered_core import credentials
from levered_core.plugin_api import Cell, Lister, Result, parse_time

COLUMNS = ("Current", "API URL", "Environment", "User", "Organization", "Expires")


def expires(session: dict[str, Any], now: dt.datetime | None = None) -> str:
    """``in 23h``, ``expired, renews on use`` (a refresh token is stored), ``expired``; ``-`` if unknown."""
    if not session.get("expires_at"):
        return "-"
    seconds = (parse_time(session["expires_at"]) - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds <= 0:
        return "expired, renews on use" if session.get("refreshable") else "expired"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {int(seconds // size)}{unit}"
    return "in <1m"


def status_document(app: Any) -> dict[str, Any]:
    """The ``--json`` document: ``current`` (URL in force, where it comes from, credential) and ``sessions``."""
    env, api_url = app.target()
    key = credentials.api_key()
    sessions = []
    for environment, session in credentials.stored_sessions():
        sessions.append({"api_url": session.api_url, "environment": environment, "user": session.user,
                         "organization": session.organization, "expires_at": session.expires_at,
                         "refreshable": bool(session.refresh_token),
                         "current": not key and (environment, session.api_url) == (env, api_url)})
    in_use = "api_key" if key else "session" if any(s["current"] for s in sessions) else None
    source = "flag --api-url" if app.options.api_url else app.settings.source("api_url")
    return {"current": {"api_url": api_url, "environment": env, "api_url_source": source, "credential": in_use},
            "sessions": sessions}


def current_line(document: dict[str, Any], login: str, config_path: str) -> str:
    """One line for people: the URL in force, why, and what commands authenticate with."""
    current = document["current"]
    why = {"flag --api-url": "the --api-url flag", "env LEVERED_API_URL": "LEVERED_API_URL",
           "user": f"api_url in {config_path}", "site": "api_url in the site config"}.get(
        current["api_url_source"], f"the default of environment {current['environment']}")
    where = f"Commands use {current['api_url']} (from {why}; environment {current['environment']})"
    if current["credential"] == "api_key":
        return f"{where} with LEVERED_API_KEY: stored sessions are ignored while it is set."
    if current["credential"] == "session":
        return f"{where} with its stored session (marked *)."
    return f"{where}, which has no stored session: run `{login}` or set LEVERED_API_KEY."


class ShowAuthStatus(Lister):
    """List stored login sessions and the one commands use"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_core import config

        app = self.levered_app
        document = status_document(app)
        rows = [(Cell(s["current"], lambda current: "*" if current else ""), s["api_url"], s["environment"],
                 Cell((s["user"] or {}).get("email")), Cell((s["organization"] or {}).get("name")),
                 Cell(s["expires_at"], lambda _, s=s: expires(s))) for s in document["sessions"]]
        footer = current_line(document, app.login_command(), str(config.config_path()))
        return Result(COLUMNS, rows, document, footer=footer)
