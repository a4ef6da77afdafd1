"""Results: each finished row made durable before it counts, and how far in source order rows are settled."""

from engine.results.settled import SettledRows
from engine.results.sqlite_store import SqliteResultStore
from engine.results.store import (
    ErrorClass,
    Key,
    ResultStore,
    RowResult,
    RowStatus,
    Unit,
    encode_key,
    stored_key,
)

__all__ = ["ErrorClass", "Key", "ResultStore", "RowResult", "RowStatus", "SettledRows", "SqliteResultStore",
           "Unit", "encode_key", "stored_key"]
