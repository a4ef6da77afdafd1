"""Alembic environment: async engines, or a connection handed in by `core.db.migrate`."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy.engine import Connection

from core.db.engine import create_engine
from core.db.migrate import only_rowloom_tables
from core.models import metadata
from core.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_with(connection: Connection) -> None:
    """Run the migrations on a synchronous (or run_sync-wrapped) connection."""
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      include_name=only_rowloom_tables, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    """Connect with the settings' DATABASE_URL (or -x url=...) and migrate."""
    url = context.get_x_argument(as_dictionary=True).get("url") or get_settings().database_url
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
shared = config.attributes.get("connection")
if shared is not None:
    run_with(shared)
else:
    asyncio.run(run_online())
