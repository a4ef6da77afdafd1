"""Database access: the async engine and sessions, portable column types, migrations."""

from core.db.engine import Database

__all__ = ["Database"]
