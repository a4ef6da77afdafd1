"""Database access: the async engine and sessions, portable column types, migrations."""

from api_server.db.engine import Database

__all__ = ["Database"]
