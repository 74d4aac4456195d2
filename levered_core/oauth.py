"""Login flows on oauthlib: loopback redirect with PKCE, device code, refresh, revoke.

The server side is ``docs/api.md`` section 4. The CLI is the public client
``levered-cli``; tokens are stored by :mod:`levered_core.credentials`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import html
import http.server
import json
import os
import pathlib
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from oauthlib.oauth2 import OAuth2Error, WebApplicationClient

from levered_core import credentials, statefile
from levered_core.errors import ConnectionFailed, LeveredError, NotAuthenticated

CLIENT_ID = "levered-cli"
SCOPE = "api"
CALLBACK_TIMEOUT = 300
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_MARGIN = dt.timedelta(seconds=60)
CALLBACK_PAGE = (b"<!doctype html><meta charset=utf-8><title>Levered</title><body style='font-family:sans-serif'>"
                 b"<h1>%s</h1><p>You can close this tab and return to the terminal.</p>")


class LoginError(LeveredError):
    """The login did not complete; the message says why and what to do."""


@contextlib.contextmanager
def _insecure_transport_allowed(url: str) -> Iterator[None]:
    # oauthlib refuses http:// unless told otherwise; a local server on http is the normal case here.
    if not url.startswith("http://"):
        yield
        return
    previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous


def discover(session: Any, api_url: str) -> dict[str, Any]:
    """Fetch the RFC 8414 metadata of ``api_url``.

    :raises LoginError: the server has no OAuth metadata (e.g. the hosted service).
    """
    import requests

    from levered_core.client import describe_failure

    try:
        response = session.get(f"{api_url}/.well-known/oauth-authorization-server", timeout=10)
    except requests.RequestException as exc:
        raise ConnectionFailed(api_url, describe_failure(exc)) from None
    if response.status_code == 404:
        raise LoginError("This server does not support levered login; set LEVERED_API_KEY instead.")
    if not response.ok:
        raise LoginError(f"the server's OAuth metadata answered {response.status_code}")
    return dict(response.json())


def _token_request(session: Any, metadata: dict[str, Any], body: str) -> dict[str, Any]:
    response = session.post(metadata["token_endpoint"], data=body, timeout=30,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not response.ok:
        error = OAuth2Error(description=payload.get("error_description") or f"HTTP {response.status_code}",
                            status_code=response.status_code)
        error.error = payload.get("error") or "server_error"
        raise error
    return dict(payload)


def _session_from(token: dict[str, Any], api_url: str) -> credentials.Session:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(token.get("expires_in") or 86400))
    return credentials.Session(session_token=token["access_token"], refresh_token=token.get("refresh_token"),
                               expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"), api_url=api_url)


def _callback_problem(params: dict[str, str], state: str, issuer: str) -> str | None:
    """Why a loopback callback is no login (in words), or None when it carries a code."""
    if params.get("state") != state:
        return "the login answer carried the wrong state (a forged or stale redirect); nothing was stored"
    if params.get("iss") and params["iss"].rstrip("/") != issuer.rstrip("/"):
        return f"the login answer came from issuer {params['iss']!r}, not {issuer!r}"
    if "error" in params:
        return f"login refused: {params.get('error_description') or params['error']}"
    if not params.get("code"):
        return "the login answer carried no authorization code; run `levered login` again"
    return None


class _Callback:
    """What the loopback listener received: the full callback URL, once."""

    def __init__(self, state: str, issuer: str) -> None:
        self.state = state
        self.issuer = issuer
        self.url: str | None = None
        self.done = threading.Event()

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        callback = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path, _, query = self.path.partition("?")
                if path != "/callback" or callback.done.is_set():
                    self.send_error(404)
                    return
                callback.url = f"http://{self.headers.get('Host')}{self.path}"
                problem = _callback_problem(dict(urllib.parse.parse_qsl(query)), callback.state,
                                            callback.issuer)
                self.send_response(400 if problem else 200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                title = f"Login failed: {problem}" if problem else "Logged in to Levered"
                self.wfile.write(CALLBACK_PAGE % html.escape(title).encode("utf-8"))
                callback.done.set()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def browser_login(session: Any, api_url: str, metadata: dict[str, Any], *, open_browser: bool,
                  out: TextIO, opener: Callable[[str], bool] | None = None) -> credentials.Session:
    """Run the authorization-code flow with PKCE through a loopback redirect (RFC 8252).

    :param open_browser: open the URL with :mod:`webbrowser` (it is printed either way).
    :raises LoginError: timeout, wrong ``state`` or ``iss``, denied consent, or a failed exchange.
    """
    state = secrets.token_urlsafe(16)
    callback = _Callback(state, str(metadata["issuer"]))
    server = http.server.HTTPServer(("127.0.0.1", 0), callback.handler())
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    client = WebApplicationClient(CLIENT_ID)
    verifier = client.create_code_verifier(43)
    with _insecure_transport_allowed(api_url):
        url = client.prepare_request_uri(metadata["authorization_endpoint"], redirect_uri=redirect_uri, scope=[SCOPE],
                                         state=state, code_challenge=client.create_code_challenge(verifier, "S256"),
                                         code_challenge_method="S256")
        out.write(f"Open this URL in a browser on this machine to log in:\n\n  {url}\n\nWaiting for the browser...\n")
        out.flush()
        if open_browser:
            import webbrowser

            (opener or webbrowser.open)(url)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            if not callback.done.wait(CALLBACK_TIMEOUT) or callback.url is None:
                raise LoginError(f"no answer from the browser within {CALLBACK_TIMEOUT} s; run `levered login` again")
        finally:
            server.shutdown()
            server.server_close()
        return _finish_code_flow(session, api_url, metadata, client, callback.url, state, redirect_uri)


def _finish_code_flow(session: Any, api_url: str, metadata: dict[str, Any], client: WebApplicationClient,
                      callback_url: str, state: str, redirect_uri: str) -> credentials.Session:
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback_url).query))
    problem = _callback_problem(params, state, str(metadata["issuer"]))
    if problem:
        raise LoginError(problem)
    try:
        client.parse_request_uri_response(callback_url, state=state)
        body = client.prepare_request_body(code=params["code"], redirect_uri=redirect_uri,
                                           code_verifier=client.code_verifier, include_client_id=True)
        token = client.parse_request_body_response(json.dumps(_token_request(session, metadata, body)))
    except OAuth2Error as exc:
        raise LoginError(f"the server refused the login: {exc.description or exc.error}") from None
    return _session_from(dict(token), api_url)


def device_login(session: Any, api_url: str, metadata: dict[str, Any], *, out: TextIO,
                 sleep: Callable[[float], None] = time.sleep) -> credentials.Session:
    """Run the device authorization grant (RFC 8628): print a code, poll until approved."""
    import requests

    if "device_authorization_endpoint" not in metadata:
        raise LoginError("this server does not offer the device flow; log in without --device")
    response = session.post(metadata["device_authorization_endpoint"], timeout=30,
                            data={"client_id": CLIENT_ID, "scope": SCOPE})
    if not response.ok:
        raise LoginError(f"the server refused the device login ({response.status_code})")
    grant = response.json()
    out.write(f"To log in, open {grant['verification_uri']} and enter the code {grant['user_code']}\n"
              f"(or open {grant.get('verification_uri_complete', grant['verification_uri'])})\nWaiting...\n")
    out.flush()
    interval = float(grant.get("interval") or 5)
    deadline = time.monotonic() + float(grant.get("expires_in") or 600)
    body = urllib.parse.urlencode({"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                   "client_id": CLIENT_ID})
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            return _session_from(_token_request(session, metadata, body), api_url)
        except (requests.ConnectionError, requests.Timeout):
            # RFC 8628 3.5: a poll that fails to connect backs off and polls again.
            interval = min(interval * 2, 60.0)
            continue
        except OAuth2Error as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5
                continue
            raise LoginError(f"device login failed: {exc.description or exc.error}") from None
    raise LoginError("the device code expired before it was approved; run `levered login --device` again")


@contextlib.contextmanager
def _locked(path: os.PathLike[str] | str) -> Iterator[None]:
    lock_path = f"{os.fspath(path)}.lock"
    statefile.ensure_dir(pathlib.Path(lock_path).parent)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)


def refresh(session: Any, environment: str, api_url: str, stale_token: str | None, *,
            login: str = "levered login") -> str:
    """Refresh the stored session once, under the auth file's lock; return the new access token.

    If another process refreshed meanwhile (the stored token differs from ``stale_token``),
    its token is used instead of rotating again. The session keeps the user and organization
    it was stored with.

    :param login: the command that logs in again, named when the refresh fails.
    :raises NotAuthenticated: no refresh token, or the server refused it.
    """
    path = credentials.auth_path(environment, api_url)
    with _locked(path):
        current = credentials.load_session(environment, api_url)
        if current is None or not current.refresh_token:
            raise NotAuthenticated.session_refused(api_url, login)
        if current.session_token != stale_token and not expires_soon(current):
            return current.session_token
        client = WebApplicationClient(CLIENT_ID)
        body = client.prepare_refresh_body(refresh_token=current.refresh_token, client_id=CLIENT_ID)
        try:
            metadata = discover(session, api_url)
            token = _token_request(session, metadata, body)
        except (OAuth2Error, LeveredError):
            raise NotAuthenticated.session_refused(api_url, login) from None
        fresh = dataclasses.replace(_session_from(token, api_url), user=current.user,
                                    organization=current.organization)
        credentials.save_session(environment, fresh)
        return fresh.session_token


def expires_soon(stored: credentials.Session) -> bool:
    """Whether the access token expires within a minute (or its expiry is unknown)."""
    if not stored.expires_at:
        return False
    expires = dt.datetime.fromisoformat(stored.expires_at.replace("Z", "+00:00"))
    return expires - dt.datetime.now(dt.UTC) < REFRESH_MARGIN


def revoke(session: Any, api_url: str, token: str) -> bool:
    """Revoke a refresh token on the server (best effort); return whether the server said yes."""
    try:
        metadata = discover(session, api_url)
        response = session.post(metadata["revocation_endpoint"], timeout=10,
                                data={"token": token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID})
    except (LeveredError, KeyError, OSError):
        return False
    return bool(response.ok)
