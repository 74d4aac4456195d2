"""``LeveredClient``: every HTTP call of the CLI goes through here.

It resolves nothing by itself: the app hands it the API URL, the token and the timeout
it resolved from flags, environment and config. It adds the credential, the
``User-Agent``, timeouts and retries (idempotent requests only), and turns every failure
into one :class:`~levered_core.errors.LeveredError` carrying the server's message and
request id.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from levered_core import __version__, credentials, resources
from levered_core.errors import APIError, ApiKeyRefused, ConnectionFailed, NotAuthenticated, NotFound, Unauthorized

LOG = logging.getLogger("levered.http")

CONNECT_TIMEOUT = 5.0
#: Waits before retry 1, 2 and 3 of an idempotent request (docs/api.md 13.1).
BACKOFF = (0.5, 1.0, 2.0)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = 60.0


def user_agent() -> str:
    """Return ``levered-cli/<version> python/<major.minor> <platform>``."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"levered-cli/{__version__} python/{python} {platform.system().lower()}"


class LeveredClient:
    """A small client for the Levered REST API.

    :param api_url: the normalized base URL, e.g. ``http://localhost:3100``.
    :param token: the bearer credential, or ``None`` for public endpoints only.
    :param timeout: the read timeout of each request, in seconds.
    :param ca_bundle: a PEM file of CA certificates to verify TLS with.
    :param sleep: how to wait between retries (tests pass a fake).
    :param refresher: called with the rejected token after a 401 to get a fresh one (a stored
        login session); the request is then retried once.
    :param login_command: the command that logs in to ``api_url``, named when a request needs a
        credential and there is none.
    """

    def __init__(
        self,
        api_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        ca_bundle: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        refresher: Callable[[str | None], str] | None = None,
        login_command: str = "levered login",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.login_command = login_command
        self._refresher = refresher
        self.timeout = timeout
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent()
        self.session.headers["Accept"] = "application/json"
        if ca_bundle:
            self.session.verify = ca_bundle

    @property
    def optimizations(self) -> resources.Optimizations:
        """Optimizations, their results, observations and serving."""
        return resources.Optimizations(self)

    @property
    def models(self) -> resources.Models:
        """Bandit models: list, state, train, delete."""
        return resources.Models(self)

    @property
    def metrics(self) -> resources.Metrics:
        """Reward metrics."""
        return resources.Metrics(self)

    @property
    def warehouse(self) -> resources.Warehouse:
        """Warehouse status, discovery and read-only queries."""
        return resources.Warehouse(self)

    @property
    def identity(self) -> resources.Identity:
        """The caller (``/me``) and API keys."""
        return resources.Identity(self)

    def url(self, path: str, *segments: str) -> str:
        """Join the base URL, a path and URL-encoded path segments."""
        tail = "".join("/" + quote(segment, safe="") for segment in segments)
        return f"{self.api_url}/{path.lstrip('/')}{tail}"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` a path and return the decoded JSON body.

        :raises LeveredError: on any failure (see :meth:`request`).
        """
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """``POST`` a JSON body and return the decoded JSON response."""
        return self.request("POST", path, json_body={} if body is None else body)

    def patch(self, path: str, body: Any) -> Any:
        """``PATCH`` a JSON body and return the decoded JSON response."""
        return self.request("PATCH", path, json_body=body)

    def delete(self, path: str) -> Any:
        """``DELETE`` a path and return the decoded JSON response."""
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
    ) -> Any:
        """Send one request, retrying idempotent ones, and return the decoded JSON body.

        :param authenticated: send the credential; without one, fail before sending.
        :raises NotAuthenticated: no credential for an authenticated request, or a 401.
        :raises ApiKeyRefused: a 401 to the key in ``LEVERED_API_KEY``.
        :raises NotFound: the server answered 404.
        :raises APIError: any other error status.
        :raises ConnectionFailed: the server could not be reached.
        """
        try:
            return self._send(method, path, params, json_body, authenticated)
        except Unauthorized as exc:
            if authenticated and self.token and self.token == credentials.api_key():
                raise ApiKeyRefused(exc.status, exc.code, exc.message, request_id=exc.request_id,
                                    details=exc.details, body=exc.body) from None
            if not (authenticated and self._refresher):
                raise
            self.token = self._refresher(self.token)  # once per request; a long session may refresh again
            return self._send(method, path, params, json_body, authenticated)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any,
              authenticated: bool) -> Any:
        headers = {}
        if authenticated:
            if not self.token:
                raise NotAuthenticated.no_session(self.api_url, self.login_command)
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.url(path) if not path.startswith(("http://", "https://")) else path
        attempts = len(BACKOFF) + 1 if method in IDEMPOTENT else 1
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, params=_encode_params(params), json=json_body,
                    headers=headers, timeout=(CONNECT_TIMEOUT, self.timeout),
                )
            except requests.RequestException as exc:
                LOG.debug("%s %s failed: %s", method, url, type(exc).__name__)
                if attempt + 1 < attempts and isinstance(exc, requests.ConnectionError):
                    self._sleep(BACKOFF[attempt])
                    continue
                raise ConnectionFailed(self.api_url, describe_failure(exc)) from exc
            LOG.debug(
                "%s %s -> %s (%s, %.0f ms)", method, url, response.status_code,
                response.headers.get("X-Request-Id", "no request id"),
                (time.monotonic() - started) * 1000,
            )
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                self._sleep(_retry_after(response, BACKOFF[attempt]))
                continue
            return _decode(response)
        raise AssertionError("unreachable")  # pragma: no cover


def _encode_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    encoded = {}
    for key, value in params.items():
        if value is None:
            continue
        encoded[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return encoded


def _retry_after(response: requests.Response, fallback: float) -> float:
    try:
        return min(max(float(response.headers["Retry-After"]), 0.0), MAX_RETRY_AFTER)
    except (KeyError, ValueError):
        return fallback


def describe_failure(exc: requests.RequestException) -> str:
    """Say in words why a request failed and what to do."""
    if isinstance(exc, requests.Timeout):
        return "the request timed out (raise it with `levered config set timeout SECONDS`)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (set `ca_bundle` if your server uses a private CA)"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or host unknown; is the server running?"
    return type(exc).__name__


def _decode(response: requests.Response) -> Any:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if response.ok:
        if body is None:
            raise APIError(response.status_code, "bad_response", "the server sent a response that is not JSON")
        return body
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    meta = body.get("meta") if isinstance(body, dict) else None
    request_id = (meta or {}).get("request_id") if isinstance(meta, dict) else None
    status = response.status_code
    error_class = {401: Unauthorized, 404: NotFound}.get(status, APIError)
    details = error.get("details")
    raise error_class(
        status,
        str(error.get("code") or f"http_{status}"),
        str(error.get("message") or f"the server answered {status} {response.reason}"),
        request_id=request_id or response.headers.get("X-Request-Id"),
        details=details if isinstance(details, dict) else None,
        body=body,
    )
