"""State store: SQLAlchemy models, organization-scoped sessions, migrations."""

from levered_server.store.db import Store, open_store

__all__ = ["Store", "open_store"]
