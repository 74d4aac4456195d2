"""Dependencies of the routers, as `Annotated` aliases."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel

from levered_server.runtime import Runtime
from levered_server.services.identity import Caller, authenticate

T = TypeVar("T", bound=BaseModel)
_bearer = HTTPBearer(auto_error=False, description="Access token or API key")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (store, warehouses, settings).

    ``async`` (it awaits nothing) so FastAPI calls it on the event loop: a plain ``def``
    dependency runs in the thread pool, two thread hops per serve request.
    """
    runtime: Runtime = request.app.state.runtime
    return runtime


@dataclasses.dataclass
class Context:
    """One request: its id, the runtime, and (on protected endpoints) the caller."""

    request_id: str
    runtime: Runtime
    caller: Caller | None = None

    @property
    def org_id(self) -> str:
        assert self.caller is not None
        return self.caller.organization_id

    @property
    def meta(self) -> dict[str, Any]:
        return {"request_id": self.request_id,
                "organization_id": self.caller.organization_id if self.caller else None}

    def wrap(self, model: type[T], data: dict[str, Any]) -> T:
        """Build a success response: the fields at the top level plus `meta`."""
        return model.model_validate({**data, "meta": self.meta})


async def public_context(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
                         ) -> Context:
    """Context of a public endpoint (no credential read; on the event loop, see above)."""
    return Context(request_id=request.state.request_id, runtime=runtime)


def authed_context(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)],
                   _b: Annotated[Any, Security(_bearer)] = None,
                   _k: Annotated[Any, Security(_api_key)] = None) -> Context:
    """Context of a protected endpoint: resolves the credential or raises 401."""
    caller = authenticate(store=runtime.store,
                          authorization=request.headers.get("authorization"),
                          x_api_key=request.headers.get("x-api-key"))
    request.state.organization_id = caller.organization_id
    return Context(request_id=request.state.request_id, runtime=runtime, caller=caller)


Ctx = Annotated[Context, Depends(authed_context)]
PublicCtx = Annotated[Context, Depends(public_context)]
