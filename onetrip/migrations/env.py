"""Alembic environment: runs on the connection `onetrip.migrate` hands it."""

from __future__ import annotations

from alembic import context

from onetrip.domains import load_models

target_metadata = load_models()
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `onetrip db upgrade`")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
