"""`GET /healthz` (API.md 12.1) and `GET /readyz`: no envelope, no credential, not rate-limited.

Both name the replica that answered, for a load balancer's health checks and the people
reading them. /healthz says whether the process and its state store answer (liveness);
/readyz also whether the runtime has started, with what each loaded optimization is served.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from levered_server import __version__
from levered_server.api.deps import get_runtime
from levered_server.replica import state_backend
from levered_server.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> JSONResponse:
    """Report whether the server and its state store answer."""
    ok = runtime.started and runtime.store.ping()
    return JSONResponse({"status": "ok" if ok else "unavailable", "version": __version__,
                         "replica": runtime.replica.as_dict()},
                        status_code=200 if ok else 503)


@router.get("/readyz", operation_id="readyz")
def readyz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> JSONResponse:
    """Report whether this replica takes traffic, and what it serves."""
    reason = None
    if not runtime.started:
        reason = "the server is starting or stopping"
    elif not runtime.store.ping():
        reason = "the state database does not answer"
    body: dict[str, Any] = {
        "status": "ready" if reason is None else "unavailable", "version": __version__,
        "replica": runtime.replica.as_dict(),
        "state_backend": state_backend(runtime.settings.sqlalchemy_url),
        "serving": runtime.serve_cache.served_versions() if runtime.serve_cache is not None else {}}
    if reason is not None:
        body["reason"] = reason
    return JSONResponse(body, status_code=200 if reason is None else 503)
