"""`GET /healthz` (API.md 12.1): no envelope, not rate-limited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from levered_server import __version__
from levered_server.api.deps import get_runtime
from levered_server.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> JSONResponse:
    """Report whether the server and its state store answer."""
    ok = runtime.store.ping()
    return JSONResponse({"status": "ok" if ok else "unavailable", "version": __version__},
                        status_code=200 if ok else 503)
