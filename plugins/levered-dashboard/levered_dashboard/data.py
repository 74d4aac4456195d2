"""One round of read-only requests, and what the dashboard knows between rounds.

A round is ``GET /api/v2/optimizations?limit=100`` and, for each optimization listed, its
results and its model's state (docs/api.md 6.2, 6.6, 8.4), and, where the server offers them
(extensions, 6.10 and 6.11), its lift history and its guardrails as configured. No Textual here: the app calls
:func:`fetch_round` from a worker thread, ``--once`` calls it directly.

A failure that concerns the whole server (unreachable, credential refused) ends the round and
keeps every earlier number, with the reason in :attr:`Snapshot.problem`. A failure that
concerns one optimization's results or state (a 404, a 5xx, a shape we do not know) keeps that
part's last good body and records why it is not fresh; the rest of the round goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from levered_core.errors import ConnectionFailed, LeveredError, NotAuthenticated, Unauthorized

if TYPE_CHECKING:
    from levered_core.plugin_api import LeveredClient

LIST_LIMIT = 100


@dataclasses.dataclass
class Item:
    """One optimization with its latest results and model state (either may be missing)."""

    optimization: dict[str, Any]
    results: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    #: why ``results`` is missing or stale (``None`` when the last request succeeded)
    results_error: str | None = None
    #: why ``state`` is missing or stale
    state_error: str | None = None
    #: the model's daily lift estimates (server extension; ``None`` where the server has none)
    lift_history: dict[str, Any] | None = None
    #: the guardrails as configured and any automatic stop (server extension, no evaluation)
    guardrails: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """The optimization's ID."""
        return str(self.optimization["id"])


@dataclasses.dataclass
class Snapshot:
    """Everything on screen: the last good data, when it arrived, and what is wrong now."""

    api_url: str
    items: list[Item] = dataclasses.field(default_factory=list)
    #: wall-clock time (seconds since the epoch) of the last round that reached the server
    updated_at: float | None = None
    #: a few words saying why the last round failed; ``None`` when it succeeded
    problem: str | None = None
    #: ``unreachable``, ``auth`` or ``server`` while :attr:`problem` is set
    problem_kind: str | None = None
    #: the rest of the story (the client's one-line error message)
    problem_detail: str | None = None
    #: the exception that ended the last round
    error: Exception | None = None

    def item(self, optimization_id: str) -> Item | None:
        """Return the item of an optimization, or ``None`` if it is not listed."""
        return next((i for i in self.items if i.id == optimization_id), None)


def _problem(exc: Exception) -> tuple[str, str, str]:
    if isinstance(exc, ConnectionFailed):
        return "unreachable", "Server unreachable", str(exc)
    if isinstance(exc, NotAuthenticated | Unauthorized):
        return "auth", "Not authenticated (run `levered login`)", \
            "the credential is missing, expired or revoked; log in again or set LEVERED_API_KEY"
    if isinstance(exc, LeveredError):
        return "server", "Server error", str(exc)
    return "server", "Unexpected response", f"{type(exc).__name__}: {exc}"


def _fatal(exc: Exception) -> bool:
    """A failure that no other request of the round would escape."""
    return isinstance(exc, ConnectionFailed | NotAuthenticated | Unauthorized)


def _fetch_part(call: Any, previous: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    try:
        body = call()
    except LeveredError as exc:
        if _fatal(exc):
            raise
        return previous, f"not available: {exc}"
    if not isinstance(body, dict) or not isinstance(body.get("variants"), list):
        return previous, "not available: unexpected response shape"
    return body, None


def _fetch_item(client: LeveredClient, optimization: dict[str, Any], previous: Item | None) -> Item:
    item = Item(optimization, previous.results if previous else None, previous.state if previous else None)
    item.results, item.results_error = _fetch_part(lambda: client.optimizations.results(item.id), item.results)
    model_id = optimization.get("model_id")
    if model_id:
        item.state, item.state_error = _fetch_part(lambda: client.models.state(model_id), item.state)
    else:
        item.state, item.state_error = None, "no model: it was deleted (`levered models create`)"
    item.lift_history = _extension(lambda: client.optimizations.lift_history(item.id), "points")
    item.guardrails = _extension(lambda: client.optimizations.guardrails(item.id, evaluate=False), "guardrails")
    return item


def _extension(call: Any, key: str) -> dict[str, Any] | None:
    """The body of a server extension, or ``None`` where the server lacks it or answers oddly."""
    try:
        body = call()
    except LeveredError as exc:
        if _fatal(exc):
            raise
        return None
    return body if isinstance(body, dict) and isinstance(body.get(key), list) else None


def fetch_round(client: LeveredClient, previous: Snapshot, clock: Callable[[], float] = time.time) -> Snapshot:
    """Make one round of requests and return the new snapshot; never raises.

    :param client: the core's API client (only ``GET`` requests are sent).
    :param previous: the snapshot on screen, whose data is kept where a request fails.
    :param clock: the wall clock that stamps :attr:`Snapshot.updated_at`.
    :returns: a new :class:`Snapshot`; ``problem`` says why, if the round failed.
    """
    try:
        body = client.optimizations.list(limit=LIST_LIMIT)
        listed = body["optimizations"]
        if not isinstance(listed, list):
            raise TypeError("'optimizations' is not a list")
        items = [_fetch_item(client, o, previous.item(str(o["id"]))) for o in listed]
    except Exception as exc:  # anything at all: keep the last data on screen and say why
        kind, message, detail = _problem(exc)
        return dataclasses.replace(previous, problem=message, problem_kind=kind, problem_detail=detail, error=exc)
    return Snapshot(previous.api_url, items, clock())
