"""Write answers back into a MySQL/MariaDB table by key: batched UPDATEs, one transaction per batch."""

from __future__ import annotations

import math
from typing import Any

from engine.errors import InputError
from engine.results.settled import SettledRows
from engine.results.store import ResultStore
from engine.sinks.base import cell_text
from engine.sources.base import Source
from engine.sources.mysql_connection import Connections, quote, table_columns
from engine.spec.flow import output_fields
from engine.spec.io_models import Connection
from engine.spec.models import WorkflowSpec, mysql_output

BATCH = 1_000
TABLE_OUTPUT = "mysql "  # how a run names an output that went to a table: "mysql <database>.<table>"


def is_table_output(output: str) -> bool:
    """Whether a run's output (as RunOutcome and the output events name it) is a table, not a file."""
    return output.startswith(TABLE_OUTPUT)


class MysqlWriteBack:
    """UPDATE table SET <output columns> WHERE key = ... for every done row."""

    def __init__(self, connection: Connection, table: str, key: str, outputs: dict[str, str], *,
                 connections: Connections) -> None:
        self.connection = connection
        self.connections = connections
        self.database = connections.settings(connection)[0].database
        self.table = table
        self.key = key
        self.outputs = outputs
        self.description = f"{TABLE_OUTPUT}{self.database}.{table}"
        self._checked = False

    @classmethod
    def from_spec(cls, spec: WorkflowSpec, connections: Connections) -> MysqlWriteBack:
        """The table `mysql_output` names for the spec (its sink, or its MySQL source's)."""
        target = mysql_output(spec)
        if target is None or target.connection is None or target.table is None or target.key is None:
            raise InputError("sink: a mysql sink needs connection, table and key")
        return cls(target.connection, target.table, target.key, output_fields(spec, lists_kept=False),
                   connections=connections)

    async def check(self) -> None:
        """The table has the key and every output column."""
        connection = await self.connections.connect(self.connection)
        try:
            columns = await table_columns(connection, self.table)
        finally:
            connection.close()
        missing = [c for c in (self.key, *self.outputs.values()) if c not in columns]
        if missing:
            raise InputError(f"{self.description}: column(s) not found: {', '.join(missing)}")
        self._checked = True

    async def save(self, source: Source, store: ResultStore, *, settled: SettledRows | None = None) -> str:
        """Update every done row, BATCH rows per transaction (after the run, when `settled` is given)."""
        if settled is not None:
            await settled.until(math.inf)
        if not self._checked:
            await self.check()
        fields = list(self.outputs)
        assignments = ", ".join(f"{quote(self.outputs[f])} = %s" for f in fields)
        sql = f"UPDATE {quote(self.table)} SET {assignments} WHERE {quote(self.key)} = %s"
        connection = await self.connections.connect(self.connection)
        try:
            after: str | None = None
            while True:
                results, after = await store.done_page(after=after, limit=BATCH)
                if not results:
                    break
                rows: list[tuple[Any, ...]] = [(*(cell_text(r.outputs.get(f)) for f in fields), r.key) for r in results]
                await connection.execute_many(sql, rows)
        except BaseException:
            await connection.rollback()
            raise
        finally:
            connection.close()
        return self.description
