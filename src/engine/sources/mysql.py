"""A MySQL/MariaDB table read in batches ordered by its key (keyset paging: fast at any depth)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import polars as pl

from engine.errors import InputError
from engine.sources.base import Batch, canonical_key
from engine.sources.mysql_connection import Connections, MysqlSession, quote, table_columns
from engine.spec.models import MysqlSourceSpec
from engine.spec.sql_condition import parse_condition


class MysqlTableSource:
    """Rows of `table` (optionally filtered by `where`), `batch_size` at a time, by ascending key."""

    parallel_reads = False  # one connection: a second walk would interleave with the first
    first_row: int | None = None  # rows are keyed by the table's key column

    def __init__(self, config: MysqlSourceSpec, connection: MysqlSession, columns: list[str], database: str) -> None:
        self.config = config
        self.connection = connection
        self.columns = columns
        self.description = f"mysql {database}.{config.table}"
        self._from = f"FROM {quote(config.table)}"
        condition = parse_condition(config.where) if config.where else None
        where, self._where_args = condition.sql(quote) if condition else ("1=1", [])
        self._where = f"({where})"
        self._where_columns = condition.columns() if condition else []

    @classmethod
    async def open(cls, config: MysqlSourceSpec, connections: Connections) -> MysqlTableSource:
        """Connect and read the table's columns; the key column must exist and be unique."""
        connection = await connections.connect(config.connection)
        try:
            columns = await table_columns(connection, config.table)
            source = cls(config, connection, columns, connection.database)
            unknown = [c for c in source._where_columns if c not in columns]
            if unknown:
                raise InputError(f"{source.description}: where names column(s) not in the table: "
                                 f"{', '.join(map(repr, unknown))}")
            if config.key not in columns:
                raise InputError(f"{source.description}: key column {config.key!r} not found "
                                 f"(columns: {', '.join(columns)})")
            repeated = await source._scalar(f"SELECT {quote(config.key)} {source._from} GROUP BY {quote(config.key)} "
                                            "HAVING COUNT(*) > 1 LIMIT 1")
            if repeated is not None:
                raise InputError(f"{source.description}: key column {config.key!r} has repeated values "
                                 f"(e.g. {repeated!r})")
        except BaseException:
            connection.close()
            raise
        return source

    async def _scalar(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = await self.connection.fetch_all(sql, args)
        return rows[0][0] if rows else None

    async def count(self) -> int | None:
        """Rows matching `where`."""
        return int(await self._scalar(f"SELECT COUNT(*) {self._from} WHERE {self._where}", tuple(self._where_args)))

    async def batches(self) -> AsyncIterator[Batch]:
        """Batches by ascending key."""
        key = quote(self.config.key)
        columns = ", ".join(quote(c) for c in self.columns)
        last: Any = None
        while True:
            after = f" AND {key} > %s" if last is not None else ""
            sql = (f"SELECT {columns} {self._from} WHERE {self._where}{after} ORDER BY {key} "
                   f"LIMIT {self.config.batch_size}")
            rows = await self.connection.fetch_all(sql, (*self._where_args, *((last,) if last is not None else ())))
            if not rows:
                return
            frame = pl.DataFrame(rows, schema=self.columns, orient="row", infer_schema_length=None)
            last = rows[-1][self.columns.index(self.config.key)]
            yield Batch(frame, [canonical_key(v) for v in frame.get_column(self.config.key).to_list()])

    async def close(self) -> None:
        """Close the connection."""
        self.connection.close()
