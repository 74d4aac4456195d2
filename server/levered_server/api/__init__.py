"""HTTP layer: one thin router per resource."""

from levered_server.api import (
    health,
    identity,
    ingest,
    metrics,
    models,
    oauth,
    oauth_pages,
    optimizations,
    serve,
    warehouse,
)

# `serve` first: its `/best-variant` must win over `/{optimization_id}`.
ROUTERS = [health.router, identity.router, metrics.router, serve.router,
           optimizations.router, models.router, ingest.router,
           warehouse.router, oauth.router, oauth_pages.router]
