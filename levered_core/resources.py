"""The REST resources of ``docs/api.md``, one small class each, over one client.

Commands call ``self.client.<resource>.<verb>()``; every path of the contract is written
here once. Each method returns the decoded response body (``meta`` included).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from levered_core import inputs
from levered_core.errors import NotFound

if TYPE_CHECKING:
    from levered_core.client import LeveredClient

PAGE = 100
#: Added to the 404 of an endpoint the hosted service does not document: there it may simply not exist.
NOT_OFFERED = "; this server may not offer this operation (it is not in the hosted Levered API's documentation)"

_Method = TypeVar("_Method", bound=Callable[..., Any])


def extension(method: _Method) -> _Method:
    """Mark a method whose endpoint is a Levered extension: its 404 says the server may lack it."""
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except NotFound as exc:
            exc.message += NOT_OFFERED
            raise
    return call  # type: ignore[return-value]


class _Resource:
    def __init__(self, client: LeveredClient) -> None:
        self.client = client


class Optimizations(_Resource):
    """``/api/v2/optimizations`` (docs/api.md 6 and 7)."""

    path = "/api/v2/optimizations"

    def list(self, limit: int = 10, include_archived: bool = False, offset: int = 0) -> Any:
        """List the most recently updated optimizations."""
        params = {"limit": limit, "include_archived": include_archived or None, "offset": offset or None}
        return self.client.get(self.path, params)

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Yield every optimization, archived included, a page at a time."""
        offset, seen = 0, set[Any]()
        while True:
            page = self.list(limit=PAGE, include_archived=True, offset=offset).get("optimizations") or []
            fresh = [o for o in page if o.get("id") not in seen]
            yield from fresh
            # A server that ignores ``offset`` (it is not in the hosted documentation) sends the
            # same page again: stop there instead of asking forever.
            if len(page) < PAGE or not fresh:
                return
            seen.update(o.get("id") for o in fresh)
            offset += PAGE

    def resolve(self, value: str) -> str:
        """Return the full ID for a full ID or a unique prefix."""
        return inputs.resolve_id(value, "optimization",
                                 lambda: ((o["id"], o.get("name") or "-") for o in self.iter_all() if o.get("id")))

    def get(self, optimization_id: str) -> Any:
        """Get one optimization."""
        return self.client.get(self.client.url(self.path, optimization_id))

    def create(self, body: dict[str, Any]) -> Any:
        """Create an optimization (and its untrained model)."""
        return self.client.post(self.path, body)

    @extension
    def update(self, optimization_id: str, body: dict[str, Any]) -> Any:
        """Change an optimization's status or name."""
        return self.client.patch(self.client.url(self.path, optimization_id), body)

    @extension
    def results(self, optimization_id: str) -> Any:
        """Get the results: posterior per variant, lift, importance, time series."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/results")

    @extension
    def observations(self, optimization_id: str, page: int = 1, size: int = 20) -> Any:
        """Get one page of exposures with their attributed rewards."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/observations",
                               {"page": page, "size": size})

    @extension
    def progress(self, optimization_id: str) -> Any:
        """Get days running, exposures and users per variant, estimated progress."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/progress")

    @extension
    def lift_history(self, optimization_id: str) -> Any:
        """Get the model's daily lift estimates."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/lift-history")

    @extension
    def guardrails(self, optimization_id: str, evaluate: bool = True) -> Any:
        """Get the guardrails; evaluated (warehouse queries, may auto-stop) unless told not to."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/guardrails",
                               None if evaluate else {"evaluate": "false"})

    @extension
    def report_data(self, optimization_id: str) -> Any:
        """Get the report-data pack: design, daily counts, state, guardrails, lift history."""
        return self.client.get(self.client.url(self.path, optimization_id) + "/report-data")

    @extension
    def new_model(self, optimization_id: str) -> Any:
        """Create a fresh model for an optimization whose model was deleted."""
        return self.client.post(self.client.url(self.path, optimization_id) + "/model")

    def serve(self, optimization_id: str, body: dict[str, Any]) -> Any:
        """Ask for a variant (public endpoint: no credential is sent).

        It records an exposure, so it is not sent twice, unless ``body`` asks for a ``dry_run``.
        """
        return self.client.request("POST", self.client.url(self.path, optimization_id) + "/serve",
                                   json_body=body, authenticated=False, idempotent=bool(body.get("dry_run")))


class Models(_Resource):
    """``/api/v2/models`` (docs/api.md 8)."""

    path = "/api/v2/models"

    def list(self, limit: int = 10, include_archived: bool = False) -> Any:
        """List models, most recently updated first."""
        return self.client.get(self.path, {"limit": limit, "include_archived": include_archived or None})

    def resolve(self, value: str) -> str:
        """Return the full ID for a full ID or a unique prefix."""
        def ids() -> Iterator[tuple[str, str]]:
            for model in self.list(limit=PAGE, include_archived=True).get("models") or []:
                owner = model.get("optimization_id")  # not in the hosted documentation
                yield model["id"], f"optimization {owner}" if owner else str(model.get("model_type") or "-")
        return inputs.resolve_id(value, "model", ids)

    @extension
    def get(self, model_id: str) -> Any:
        """Get one model."""
        return self.client.get(self.client.url(self.path, model_id))

    @extension
    def state(self, model_id: str) -> Any:
        """Get the current version's posterior per variant."""
        return self.client.get(self.client.url(self.path, model_id) + "/state")

    def train(self, model_id: str, bias: dict[str, float] | None = None) -> Any:
        """Train now (synchronous)."""
        return self.client.post(self.client.url(self.path, model_id) + "/train", {} if bias is None else {"bias": bias})

    def delete(self, model_id: str) -> Any:
        """Delete a model (its optimization stops serving until a new model is created)."""
        return self.client.delete(self.client.url(self.path, model_id))


class Metrics(_Resource):
    """``/api/v2/warehouse/metrics`` (docs/api.md 9)."""

    path = "/api/v2/warehouse/metrics"

    def list(self) -> Any:
        """List metrics, newest first."""
        return self.client.get(self.path)

    def resolve(self, value: str) -> str:
        """Return the full ID for a full ID or a unique prefix."""
        return inputs.resolve_id(value, "metric",
                                 lambda: ((m["id"], m.get("name") or "-") for m in self.list().get("metrics") or []))

    @extension
    def get(self, metric_id: str) -> Any:
        """Get one metric."""
        return self.client.get(self.client.url(self.path, metric_id))

    def create(self, body: dict[str, Any]) -> Any:
        """Create a metric (the server dry-runs its SQL first)."""
        return self.client.post(self.path, body)

    @extension
    def preview(self, metric_id: str, limit: int = 10, start_date: str | None = None) -> Any:
        """Run the metric's SQL and return a sample of its rows."""
        return self.client.get(self.client.url(self.path, metric_id) + "/preview",
                               {"limit": limit, "start_date": start_date})

    @extension
    def usage(self, metric_id: str) -> Any:
        """Where a metric is used: reward of, guardrail of."""
        return self.client.get(self.client.url(self.path, metric_id) + "/usage")

    @extension
    def delete(self, metric_id: str) -> Any:
        """Delete a metric (refused while a live optimization uses it)."""
        return self.client.delete(self.client.url(self.path, metric_id))


class Warehouse(_Resource):
    """``/api/v2/warehouse`` discovery and read-only queries (docs/api.md 10)."""

    path = "/api/v2/warehouse"

    def connection(self) -> Any:
        """The organization's warehouse connection (documented; ``connection`` is null when
        there is none)."""
        return self.client.get(self.path + "/connections")

    @extension
    def status(self) -> Any:
        """Check the connection."""
        return self.client.get(self.path + "/status")

    @extension
    def tables(self) -> Any:
        """List tables and views."""
        return self.client.get(self.path + "/tables")

    @extension
    def columns(self, table: str) -> Any:
        """List a table's columns."""
        return self.client.get(self.client.url(self.path + "/tables", table) + "/columns")

    @extension
    def preview(self, table: str, limit: int = 10) -> Any:
        """Return the first rows of a table."""
        return self.client.get(self.client.url(self.path + "/tables", table) + "/preview", {"limit": limit})

    @extension
    def query(self, sql: str, limit: int = 100) -> Any:
        """Run one read-only query (a ``POST`` that changes nothing, so it is retried like a ``GET``)."""
        return self.client.post(self.path + "/query", {"sql": sql, "limit": limit}, idempotent=True)


class Identity(_Resource):
    """``/api/v2/me`` and ``/api/v2/api-keys`` (docs/api.md 5)."""

    @extension
    def me(self) -> Any:
        """Who the credential belongs to."""
        return self.client.get("/api/v2/me")

    @extension
    def list_api_keys(self) -> Any:
        """List the organization's API keys (no secrets)."""
        return self.client.get("/api/v2/api-keys")

    @extension
    def create_api_key(self, name: str) -> Any:
        """Create an API key; the response holds its secret, shown once."""
        return self.client.post("/api/v2/api-keys", {"name": name})

    @extension
    def revoke_api_key(self, key_id: str) -> Any:
        """Revoke an API key."""
        return self.client.delete(self.client.url("/api/v2/api-keys", key_id))

    def resolve_api_key(self, value: str) -> str:
        """Return the full ID for a full ID or a unique prefix."""
        return inputs.resolve_id(value, "API key",
                                 lambda: ((k["id"], k.get("name") or "-") for k in self.list_api_keys().get("api_keys") or []))
