"""Alembic environment: runs on the connection handed over by ``store.database``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from migration_assets.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        with create_engine(url).connect() as fresh:  # type: ignore[arg-type]
            context.configure(connection=fresh, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            fresh.commit()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
