"""``levered whoami``, ``levered login|logout`` and ``levered auth api-keys …``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from levered_core.plugin_api import Cell, Command, Lister, Result, ShowOne, ago, confirm, short_id


class WhoAmI(ShowOne):
    """Print the authenticated user and organization"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        me = self.client.identity.me()
        user, org = me.get("user"), me.get("organization") or {}
        email = (user or {}).get("email") or "-"
        who = f"{user.get('name') or email} <{email}>" if user else \
            f"API key {(me.get('auth') or {}).get('api_key_id') or ''}".rstrip()
        text = (f"{who}\nOrganization  {org.get('name') or '-'} ({org.get('id') or '-'})\n"
                f"API           {self.client.api_url}")
        return Result.text(text, me)


class CreateApiKey(Command):
    """Create an API key for automation (the secret is shown once)"""

    check_command = "levered auth api-keys list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", required=True, help="what the key is for, e.g. checkout-backend")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.identity.create_api_key(parsed_args.name)
        sys.stderr.write("Store this secret now: it is never shown again.\n")
        return Result.text(body.get("secret") or "-", body)


class ListApiKeys(Lister):
    """List the organization's API keys (never their secrets)"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.identity.list_api_keys()
        rows = [(Cell(k.get("id"), short_id), Cell(k.get("name")), Cell(k.get("prefix")), Cell(k.get("created_at"), ago),
                 Cell(k.get("last_used_at"), ago), Cell(k.get("created_by"), lambda by: str(by.get("email") or "-")))
                for k in body.get("api_keys") or []]
        return Result(("ID", "Name", "Prefix", "Created", "Last used", "Created by"), rows, body)


class RevokeApiKey(Command):
    """Revoke an API key immediately"""

    check_command = "levered auth api-keys list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="API key ID or a unique prefix of it")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        key_id = self.client.identity.resolve_api_key(parsed_args.id)
        confirm(f"Revoke API key {key_id}? Requests using it will fail", parsed_args.yes)
        body = self.client.identity.revoke_api_key(key_id)
        return Result.text(f"Revoked API key {key_id}", body)


def _no_browser_reason() -> str | None:
    """Why no browser can be opened here, in words, or None when one can."""
    import os
    import webbrowser

    if os.environ.get("SSH_CONNECTION") and not os.environ.get("DISPLAY"):
        return "this is an SSH session without a display"
    try:
        webbrowser.get()
    except webbrowser.Error:
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        return "no web browser was found" + ("" if display else " and there is no display")
    return None


def _login(app: Any, client: Any, api_url: str, parsed_args: argparse.Namespace) -> Any:
    """Run the flow the flags (or the machine) call for; return the new session."""
    from levered_core import oauth

    metadata = oauth.discover(client.session, api_url)
    reason = None if parsed_args.device or parsed_args.no_browser else _no_browser_reason()
    if parsed_args.device or reason:
        if reason:
            app.stderr.write(f"Using the device flow: {reason} (--no-browser prints a URL to open on this machine instead).\n")
        return oauth.device_login(client.session, api_url, metadata, out=app.stderr)
    return oauth.browser_login(client.session, api_url, metadata, open_browser=not parsed_args.no_browser,
                               out=app.stderr)


def _remember(app: Any, api_url: str) -> None:
    """Make ``api_url`` the server of later commands (config ``api_url``) and say so on stderr."""
    import os

    from levered_core import config

    app.settings.set("api_url", api_url)
    from_env = os.environ.get("LEVERED_API_URL", "").strip()
    try:
        overridden = bool(from_env) and config.normalize_url(from_env) != api_url
    except ValueError:  # not even a URL; it would stop later commands, so it is worth the warning too
        overridden = True
    if overridden:
        app.stderr.write(f"levered: warning: LEVERED_API_URL ({from_env}) is set and takes precedence over {api_url} "
                         "in later commands; unset it for them to use this login.\n")
    else:
        app.stderr.write(f"Later commands use {api_url} (api_url in {config.config_path()}).\n")


# In the epilog, not the docstring: cliff runs a docstring's paragraphs together after its summary line.
LOGIN_EPILOG = ("With --api-url (before or after `login`) later commands use that server too, until the next "
                "`levered login --api-url` or `levered config set api_url`; without it, login uses the API URL in "
                "force. `levered auth status` lists stored sessions. Logging in again revokes the previous session "
                "of the URL on the server. While LEVERED_API_KEY is set, commands use the key instead of the login.")


class Login(Command):
    """Log in through the browser and store the session"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.epilog = f"{LOGIN_EPILOG}\n\n{parser.epilog or ''}".strip()
        parser.add_argument("--api-url", metavar="URL", dest="login_api_url",
                            help="the server to log in to; later commands use it too (saved as api_url)")
        parser.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
        parser.add_argument("--device", action="store_true",
                            help="log in with a code on another device (the default over SSH or with no browser)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_core import credentials, oauth

        app = self.levered_app
        if parsed_args.login_api_url:  # usually the global parser has taken --api-url already: same meaning
            app.options.api_url = parsed_args.login_api_url
        env, api_url = app.target()
        client = app.new_client()
        if credentials.api_key():
            app.stderr.write("levered: warning: LEVERED_API_KEY is set and takes precedence over this login; "
                             "unset it for commands to use the login.\n")
        session = _login(app, client, api_url, parsed_args)
        previous = credentials.load_session(env, api_url)
        if previous and previous.refresh_token and not oauth.revoke(client.session, api_url, previous.refresh_token):
            app.stderr.write("levered: warning: the previous session could not be revoked on the server; "
                             "it expires on its own.\n")
        credentials.save_session(env, session)
        if app.options.api_url:
            _remember(app, api_url)
        client.token = session.session_token
        me = client.identity.me()
        credentials.save_session(env, session.with_identity(me))  # who it is, for `levered auth status`
        who = (me.get("user") or {}).get("email", "?")
        return Result.text(f"Logged in as {who} ({me['organization']['name']}) at {api_url}", me)


class Logout(Command):
    """Revoke and forget the stored session of this API URL"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_core import credentials, oauth

        app = self.levered_app
        env, api_url = app.target()
        stored = credentials.load_session(env, api_url)
        if stored is None:
            return Result.text("Not logged in", {"environment": env, "logged_out": False, "revoked": False})
        revoked = bool(stored.refresh_token) and oauth.revoke(app.new_client().session, api_url, stored.refresh_token)
        credentials.delete_session(env, api_url)
        text = f"Logged out of {api_url}" + ("" if revoked else " (the server could not be told; the token expires in 24 h)")
        return Result.text(text, {"environment": env, "logged_out": True, "revoked": revoked})
