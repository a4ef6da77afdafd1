"""Apply Alembic migrations from code (the `serve` command and the tests use this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_PACKAGED = Path(__file__).resolve().parents[1] / "_migrations"  # inside a wheel
_SOURCE = Path(__file__).resolve().parents[3] / "migrations"  # in a checkout


def alembic_config() -> Config:
    """An Alembic config pointing at Rowloom's migrations, wherever they are installed."""
    location = _PACKAGED if _PACKAGED.is_dir() else _SOURCE
    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["configure_logger"] = False
    return config


def only_rowloom_tables(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic `include_name`: a shared database's other tables are never Rowloom's to alter or drop."""
    from core.models import metadata

    return type_ != "table" or name in metadata.tables or name == "alembic_version"


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the engine's database to `revision`."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
