"""Alembic environment: runs on the connection the server hands over."""

from alembic import context

from levered_server.store.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic revision --autogenerate`
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
