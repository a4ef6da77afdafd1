"""Upserts that replace some columns and add to others, compiled once per dialect for the driver's executemany."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Dialect


@dataclass(frozen=True)
class CompiledUpsert:
    """The upsert as a dialect's SQL, the columns of its parameters in order, and their types' converters."""

    sql: str
    columns: list[str]
    processors: list[Any]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as the driver's parameter tuples, each value converted once by its column's type (SQLAlchemy's own
        executemany converts the same values through more layers)."""
        pairs = list(zip(self.columns, self.processors, strict=True))
        return [tuple(p(row[c]) if p else row[c] for c, p in pairs) for row in rows]


def adding_upsert(table: Table, dialect: Dialect, *, keys: Sequence[str], replaced: Sequence[str],
                  added: Sequence[str]) -> CompiledUpsert:
    """INSERT, or on a duplicate of `keys` replace `replaced` and add `added` to what is stored."""
    if dialect.name == "mysql":
        statement = mysql.insert(table)
        new = statement.inserted
        upsert: Any = statement.on_duplicate_key_update(
            {**{c: new[c] for c in replaced}, **{c: table.c[c] + new[c] for c in added}})
    else:
        lite = sqlite.insert(table)
        upsert = lite.on_conflict_do_update(
            index_elements=list(keys),
            set_={**{c: lite.excluded[c] for c in replaced}, **{c: table.c[c] + lite.excluded[c] for c in added}})
    compiled = upsert.compile(dialect=dialect)
    columns = list(compiled.positiontup or [])
    # Each column type as this dialect binds it (a SQLite datetime as the text SQLAlchemy compares it with).
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    return CompiledUpsert(compiled.string, columns, processors)
