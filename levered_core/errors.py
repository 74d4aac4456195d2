"""One error tree and one exit-code enum for the whole CLI.

Every error a user can cause or meet derives from :class:`LeveredError`; each class owns
its exit code and renders as one actionable line. Imported on every path, so it imports
nothing heavy.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in the README and by ``levered help exit-codes``."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_AUTHENTICATED = 3
    NOT_FOUND = 4
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """One line saying when this code is returned."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "error from the API, the warehouse, the network or the data",
    ExitCode.USAGE: "usage error or invalid local input (nothing was sent)",
    ExitCode.NOT_AUTHENTICATED: "not authenticated: run `levered login` or set LEVERED_API_KEY",
    ExitCode.NOT_FOUND: "the object was not found (HTTP 404)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class LeveredError(Exception):
    """Base of every error the CLI reports.

    :param message: one line saying what is wrong and what to do.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(LeveredError):
    """Invalid local input: a bad flag value, unknown key, malformed JSON."""

    exit_code = ExitCode.USAGE


class ConfigError(LeveredError):
    """A CLI state file that cannot be read (corrupt JSON, wrong type) or holds an invalid value.

    Found locally and fixed locally, so it exits 2 like any other invalid local input.
    """

    exit_code = ExitCode.USAGE


class PluginError(LeveredError):
    """A command plugin that cannot be loaded or run."""


class NotAuthenticated(LeveredError):
    """No credential, or one the server refused and a refresh cannot fix."""

    exit_code = ExitCode.NOT_AUTHENTICATED

    def __init__(self, message: str = "Not authenticated: run `levered login`") -> None:
        super().__init__(message)

    @classmethod
    def no_session(cls, api_url: str, login: str = "levered login") -> NotAuthenticated:
        """No API key and no stored session for ``api_url``: say where the CLI looked and how to log in.

        :param login: the command that logs in to ``api_url``.
        """
        return cls(f"Not authenticated: no session for {api_url}; run `{login}` or set LEVERED_API_KEY")

    @classmethod
    def session_refused(cls, api_url: str, login: str = "levered login") -> NotAuthenticated:
        """The stored session of ``api_url`` is expired or revoked and cannot be refreshed."""
        return cls(f"Not authenticated: the session for {api_url} has expired or was revoked; run `{login}`")


class ConnectionFailed(LeveredError):
    """The API server could not be reached at all: no connection, so nothing was sent.

    (Its subclass :class:`NoResponse` is a request that was sent and not answered.)

    :param api_url: the base URL that was tried.
    :param reason: why the connection failed.
    """

    def __init__(self, api_url: str, reason: str) -> None:
        super().__init__(f"cannot reach {api_url}: {reason}")
        self.api_url = api_url
        self.reason = reason


#: How to raise the CLI's read timeout, named when a request timed out.
RAISE_TIMEOUT = "raise the limit with `levered config set timeout SECONDS`"


class NoResponse(ConnectionFailed):
    """The request was sent but no answer came: it timed out, or the connection was lost.

    Unlike a plain :class:`ConnectionFailed` (nothing was sent), the server may have received the
    request; it is a ``ConnectionFailed`` all the same, so that code catching network failures
    (plugin API v1) still does. When the request changes something and is not safe to repeat
    (``maybe_applied``), the message says it may have been applied and how to check before retrying.

    :param api_url: the base URL.
    :param method: the HTTP method sent.
    :param path: the path of the request (without its query).
    :param timeout: the read timeout in seconds if it ran out; ``None`` when the connection was lost.
    :param reason: why the connection was lost, in words (unused when it timed out).
    :param maybe_applied: the request changes something and was not repeated.
    :param attempts: how many times the request was sent.
    """

    #: The command that shows whether the change was applied (set by the command that sent it).
    check: str | None = None

    def __init__(self, api_url: str, method: str, path: str, *, timeout: float | None = None,
                 reason: str = "the connection was lost", maybe_applied: bool = False, attempts: int = 1) -> None:
        super().__init__(api_url, reason)
        self.method, self.path, self.timeout = method, path, timeout
        self.maybe_applied, self.attempts = maybe_applied, attempts
        self.check_with(None)

    def check_with(self, command: str | None) -> NoResponse:
        """Name ``command`` as the way to see whether the request was applied; return ``self``."""
        self.check = command
        self.message = self._render()
        self.args = (self.message,)
        return self

    def _render(self) -> str:
        request = f"{self.method} {self.path}"
        if self.timeout is not None:
            what = f"the request to {request} timed out after {self.timeout:g} s"
        else:
            what = f"the connection to {self.api_url} was lost after {request} was sent ({self.reason})"
        if self.attempts > 1:
            what += f", {self.attempts} attempts"
        if self.maybe_applied:
            check = f"check with `{self.check}`" if self.check else "check whether it was"
            what += f"; it may have been applied on the server: {check} before retrying"
        elif self.timeout is None:
            what += ": try again"
        return f"{what} ({RAISE_TIMEOUT})" if self.timeout is not None else what


class APIError(LeveredError):
    """The server answered with an error envelope (docs/api.md 1.5).

    :param status: the HTTP status code.
    :param code: the envelope's machine-readable ``error.code``.
    :param message: the envelope's human-readable ``error.message``.
    :param request_id: ``meta.request_id`` (or the ``X-Request-Id`` header).
    :param details: the envelope's ``error.details`` object, if any.
    :param body: the whole decoded response body, printed by ``--json``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details or {}
        self.body = body

    def __str__(self) -> str:
        tail = ", ".join(part for part in (self.code, self.request_id) if part)
        return f"{self.message} ({tail})" if tail else self.message

    def detail_lines(self) -> list[str]:
        """What ``details`` adds to the message, one line each, for people.

        Each invalid field of a ``422 validation_error`` (``field: why (code)``), the warehouse's
        own words, and the columns a metric's SQL could have used; nothing the message already says.
        """
        details = self.details
        lines = []
        fields = details.get("fields")
        items = [item for item in fields if isinstance(item, dict)] if isinstance(fields, list) else []
        for item in items:
            code = f" ({item['code']})" if item.get("code") else ""
            lines.append(f"{item.get('field') or 'body'}: {item.get('message') or 'invalid'}{code}")
        if len(items) == 1 and str(items[0].get("message")) in self.message:
            lines = []  # a single field is already the message itself
        warehouse = details.get("warehouse_message")
        if warehouse and str(warehouse) not in self.message:
            lines.append("warehouse: " + str(warehouse).strip().replace("\n", "\n    "))
        available = details.get("available_columns")
        if details.get("missing_columns") and isinstance(available, list):
            lines.append(f"available columns: {', '.join(map(str, available)) or '(none)'}")
        return lines


class ServerBusy(APIError):
    """The server answered 429 (rate limited) or 503 (busy, nothing was applied) and the CLI did not
    (or no longer) retry: the message says when to try again.

    :param retry_after: the ``Retry-After`` header in seconds, if any.
    :param attempts: how many times the request was sent (idempotent requests are retried).
    """

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None,
                 details: dict[str, Any] | None = None, body: Any = None, *, retry_after: float | None = None,
                 attempts: int = 1) -> None:
        super().__init__(status, code, message, request_id=request_id, details=details, body=body)
        self.retry_after = retry_after
        self.attempts = attempts

    def __str__(self) -> str:
        tail = [f"still {'rate limited' if self.status == 429 else 'busy'} after {self.attempts} attempts"] \
            if self.attempts > 1 else []
        if "retry in" in self.message.lower():
            pass  # the server's message already says when (the rate limiter's does)
        elif self.retry_after:
            tail.append(f"retry in {self.retry_after:g} s")
        if not tail:
            return super().__str__()
        return f"{super().__str__()}; {', '.join(tail)}"


class NotFound(APIError):
    """The server answered 404 ``not_found``."""

    exit_code = ExitCode.NOT_FOUND


class Unauthorized(APIError):
    """The server answered 401: the credential is missing, expired or revoked."""

    exit_code = ExitCode.NOT_AUTHENTICATED

    def __str__(self) -> str:
        return f"Not authenticated: run `levered login` ({super().__str__()})"


class ApiKeyRefused(Unauthorized):
    """The server answered 401 to the key in ``LEVERED_API_KEY`` (a login would not help)."""

    def __str__(self) -> str:
        return ("Not authenticated: the API key in LEVERED_API_KEY was refused (invalid or revoked); "
                f"create a new key, or unset it and run `levered login` ({APIError.__str__(self)})")


def exit_code_for(error: BaseException) -> int:
    """Return the process exit code for an exception raised while running a command."""
    if isinstance(error, LeveredError):
        return int(error.exit_code)
    if isinstance(error, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.ERROR)


def describe(error: BaseException) -> str:
    """Render an exception as the line printed after ``Error:``.

    A server error whose ``details`` name invalid fields (a 422) adds one indented line per
    field, so people see every problem without ``--json``.
    """
    if isinstance(error, APIError):
        return "".join([str(error), *(f"\n  {line}" for line in error.detail_lines())])
    if isinstance(error, LeveredError):
        return str(error)
    detail = str(error) or repr(error)
    return (
        f"unexpected {type(error).__name__}: {detail} "
        "(run again with --debug for the traceback, and please report it)"
    )
