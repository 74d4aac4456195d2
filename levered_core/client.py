"""``LeveredClient``: every HTTP call of the CLI goes through here.

It resolves nothing by itself: the app hands it the API URL, the token and the timeout
it resolved from flags, environment and config. It adds the credential, the
``User-Agent``, timeouts and retries (idempotent requests only), and turns every failure
into one :class:`~levered_core.errors.LeveredError` carrying the server's message and
request id.

A failure says whether the request left this machine: :class:`ConnectionFailed` ("cannot
reach") only when no connection was made, so nothing was sent; :class:`NoResponse` when it was
sent and the answer never came (a read timeout, a reset or closed connection), which for a
request that changes something means it may have been applied.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions

from levered_core import __version__, credentials, errors, resources
from levered_core.errors import (
    APIError,
    ApiKeyRefused,
    ConnectionFailed,
    NoResponse,
    NotAuthenticated,
    NotFound,
    ServerBusy,
    Unauthorized,
)

LOG = logging.getLogger("levered.http")

CONNECT_TIMEOUT = 5.0
#: Waits before retry 1, 2 and 3 of an idempotent request (docs/api.md 13.1).
BACKOFF = (0.5, 1.0, 2.0)
#: Methods retried unless the caller says otherwise (``idempotent=``): they change nothing.
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

    def post(self, path: str, body: Any = None, *, idempotent: bool = False) -> Any:
        """``POST`` a JSON body and return the decoded JSON response.

        :param idempotent: sending it twice does no harm (a read-only query, a batch whose every
            event has an ``idempotency_key``): it is then retried like a ``GET``, and a lost answer
            does not say it may have been applied.
        """
        return self.request("POST", path, json_body={} if body is None else body, idempotent=idempotent)

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
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request, retrying idempotent ones, and return the decoded JSON body.

        :param authenticated: send the credential; without one, fail before sending.
        :param idempotent: whether the request may be sent again; by default only ``GET``,
            ``HEAD`` and ``OPTIONS`` are (``POST``, ``PATCH``, ``PUT`` and ``DELETE`` are not).
        :raises NotAuthenticated: no credential for an authenticated request, or a 401.
        :raises ApiKeyRefused: a 401 to the key in ``LEVERED_API_KEY``.
        :raises NotFound: the server answered 404.
        :raises ServerBusy: 429 or 503 that was not (or no longer) retried.
        :raises APIError: any other error status.
        :raises ConnectionFailed: the server could not be reached (nothing was sent).
        :raises NoResponse: the request was sent but no answer came (timeout, lost connection).
        """
        safe = method.upper() in IDEMPOTENT if idempotent is None else idempotent
        try:
            return self._send(method, path, params, json_body, authenticated, safe)
        except Unauthorized as exc:
            if authenticated and self.token and self.token == credentials.api_key():
                raise ApiKeyRefused(exc.status, exc.code, exc.message, request_id=exc.request_id,
                                    details=exc.details, body=exc.body) from None
            if not (authenticated and self._refresher):
                raise
            self.token = self._refresher(self.token)  # once per request; a long session may refresh again
            return self._send(method, path, params, json_body, authenticated, safe)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any,
              authenticated: bool, safe: bool) -> Any:
        headers = {}
        if authenticated:
            if not self.token:
                raise NotAuthenticated.no_session(self.api_url, self.login_command)
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.url(path) if not path.startswith(("http://", "https://")) else path
        attempts = len(BACKOFF) + 1 if safe else 1
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, params=_encode_params(params), json=json_body,
                    headers=headers, timeout=(CONNECT_TIMEOUT, self.timeout),
                )
            except requests.RequestException as exc:
                LOG.debug("%s %s failed: %s", method, url, type(exc).__name__)
                # As before: a safe request is retried after a connection error, not after a read timeout.
                if attempt + 1 < attempts and isinstance(exc, requests.ConnectionError):
                    self._sleep(BACKOFF[attempt])
                    continue
                if nothing_sent(exc):
                    raise ConnectionFailed(self.api_url, describe_failure(exc)) from exc
                raise NoResponse(self.api_url, method.upper(), urlsplit(url).path,
                                 timeout=self.timeout if timed_out(exc) else None, reason=describe_loss(exc),
                                 maybe_applied=not safe, attempts=attempt + 1) from exc
            LOG.debug(
                "%s %s -> %s (%s, %.0f ms)", method, url, response.status_code,
                response.headers.get("X-Request-Id", "no request id"),
                (time.monotonic() - started) * 1000,
            )
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                self._sleep(_retry_after(response, BACKOFF[attempt]))
                continue
            return _decode(response, attempt + 1)
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
    seconds = _retry_after_header(response)
    return fallback if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _retry_after_header(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (the API sends whole seconds, not HTTP dates), or None."""
    try:
        return max(float(response.headers["Retry-After"]), 0.0)
    except (KeyError, ValueError):
        return None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: requests keeps urllib3's error in ``args``, urllib3 its cause in ``reason``."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < 20:
        current = pending.pop(0)
        if current in found:
            continue
        found.append(current)
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [e for e in (getattr(current, "reason", None), current.__cause__, current.__context__)
                    if isinstance(e, BaseException)]
    return found


def nothing_sent(exc: requests.RequestException) -> bool:
    """Whether the request surely never left this machine: no connection (refused, unknown host,
    connect timeout), no TLS session, or a URL that cannot be sent to."""
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError | requests.exceptions.InvalidURL
                  | requests.exceptions.InvalidSchema | requests.exceptions.MissingSchema):
        return True
    # NewConnectionError (refused, unknown host) is a ConnectTimeoutError too.
    return any(isinstance(cause, urllib3.exceptions.ConnectTimeoutError) for cause in _causes(exc))


def timed_out(exc: requests.RequestException) -> bool:
    """Whether the answer did not come within the read timeout (headers, or later the body)."""
    return isinstance(exc, requests.Timeout) or any(
        isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError) for cause in _causes(exc))


def describe_loss(exc: requests.RequestException) -> str:
    """Say in words how a connection was lost after the request was sent."""
    causes = _causes(exc)
    # http.client's RemoteDisconnected (a clean close, no status line) is a ConnectionResetError too.
    if any(type(cause).__name__ == "RemoteDisconnected" for cause in causes):
        return "the server closed the connection without answering"
    if any(isinstance(cause, ConnectionResetError) for cause in causes):
        return "connection reset by the server or a proxy"
    if any(isinstance(cause, BrokenPipeError) for cause in causes):
        return "the server closed the connection while the request was sent"
    if any(isinstance(cause, urllib3.exceptions.IncompleteRead | requests.exceptions.ChunkedEncodingError)
           for cause in causes):
        return "the answer was cut off"
    return type(exc).__name__


def describe_failure(exc: requests.RequestException) -> str:
    """Say in words why a connection could not be made, and what to do."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection within {CONNECT_TIMEOUT:g} s; is the host up and the port open?"
    if isinstance(exc, requests.Timeout):
        return f"the request timed out ({errors.RAISE_TIMEOUT})"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (set `ca_bundle` if your server uses a private CA)"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or host unknown; is the server running?"
    return type(exc).__name__


def _decode(response: requests.Response, attempts: int = 1) -> Any:
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
    details = error.get("details")
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or _BUSY.get(status, "the server answered") + f" {status} {response.reason}")
    request_id = request_id or response.headers.get("X-Request-Id")
    details = details if isinstance(details, dict) else None
    if status in RETRY_STATUSES:
        raise ServerBusy(status, code, message, request_id=request_id, details=details, body=body,
                         retry_after=_retry_after_header(response), attempts=attempts)
    error_class = {401: Unauthorized, 404: NotFound}.get(status, APIError)
    raise error_class(status, code, message, request_id=request_id, details=details, body=body)


#: What a 429 or 503 without the API's envelope (a proxy's, a load balancer's) means.
_BUSY = {429: "the server is rate limiting requests: it answered", 503: "the server is busy: it answered"}
