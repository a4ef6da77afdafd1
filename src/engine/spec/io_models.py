"""Where rows come from and where results go: the source and sink sections of a spec."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from engine.spec.base import StrictModel
from engine.spec.sql_condition import condition_problem


class _FileSourceSpec(StrictModel):
    """A file of rows."""

    path: str = Field(min_length=1, description="File path, relative to the spec's folder (`rowloom run`) or to "
                                               "DATA_DIR (a job, where it must stay inside DATA_DIR or ALLOWED_ROOTS).")
    key: str | None = Field(None, description="Column whose value identifies a row; row position if unset.")
    batch_size: int = Field(10_000, ge=1, le=1_000_000,
                            description="Rows read and handed to the run at a time (memory grows with it, not with "
                                        "the file).")


class CsvSourceSpec(_FileSourceSpec):
    """Rows from a CSV file."""

    kind: Literal["csv"] = Field(description="`csv`: a CSV file, every column read as text, so values come back "
                                             "unchanged.")
    separator: str = Field(",", min_length=1, max_length=1, description="The one character between fields.")
    encoding: str = Field("utf8", min_length=1, description="Any Python codec name: utf8, gbk, latin1, ...")


class ParquetSourceSpec(_FileSourceSpec):
    """Rows from a Parquet file."""

    kind: Literal["parquet"] = Field(description="`parquet`: a Parquet file, with its own column types.")


class JsonlSourceSpec(_FileSourceSpec):
    """Rows from a JSON Lines file."""

    kind: Literal["jsonl"] = Field(description="`jsonl`: JSON Lines, one object a line.")


class ExcelSourceSpec(_FileSourceSpec):
    """Rows from one sheet of an Excel workbook."""

    kind: Literal["excel"] = Field(description="`excel`: an .xlsx or .xls workbook, one sheet.")
    sheet: int | str = Field(0, description="Sheet name, or its 0-based index among the visible sheets (0: the "
                                            "first tab a person sees; a hidden sheet is read by its name).")
    header_row: int = Field(0, ge=0, description="0-based row that holds the column names.")


CONNECTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class MysqlConnection(StrictModel):
    """How to reach a MySQL/MariaDB server, written in the spec (on the platform, only to hosts the operator
    allows in ALLOWED_DB_HOSTS)."""

    host: str = Field("127.0.0.1", description="Server name or address.")
    port: int = Field(3306, ge=1, le=65535, description="Server port.")
    user: str = Field("root", description="User to connect as.")
    password: str = Field("", description="A secret, written only as ${NAME}: resolved when the run starts (on the "
                                          "platform, only names starting with SECRET_PREFIX), never stored resolved.")
    database: str = Field(min_length=1, description="Database (schema) that holds the table.")


ConnectionName = Annotated[str, Field(pattern=CONNECTION_NAME.pattern, description="The name of a connection the "
                                      "operator configured (CONNECTIONS_FILE): host, user, password and TLS stay "
                                      "out of the spec.")]
Connection = ConnectionName | MysqlConnection


class MysqlSourceSpec(StrictModel):
    """Rows from a MySQL/MariaDB table."""

    kind: Literal["mysql"] = Field(description="`mysql`: a MySQL/MariaDB table, read in batches by ascending key.")
    connection: Connection = Field(description="A connection's name (`warehouse`: the operator's), or, where the "
                                               "operator allows it, how to reach the server.")
    table: str = Field(min_length=1, description="The table to read (and, by default, to write answers back to).")
    key: str = Field(min_length=1, description="Primary-key column; rows are read and written back by it.")
    where: str | None = Field(None, description="Optional SQL condition that limits the rows read: one condition, "
                                               "no ';' and no comments.")
    batch_size: int = Field(5_000, ge=1, le=1_000_000, description="Rows read at a time.")

    @field_validator("where")
    @classmethod
    def _one_condition(cls, where: str | None) -> str | None:
        problem = condition_problem(where) if where is not None else None
        if problem is not None:
            raise ValueError(problem)
        return where


class InlineSourceSpec(StrictModel):
    """Rows written in the spec."""

    kind: Literal["inline"] = Field(description="`inline`: rows written in the spec itself (for tries and tests).")
    rows: list[dict[str, Any]] = Field(min_length=1, description="The rows, each a mapping of column to value.")
    key: str | None = Field(None, description="Column whose value identifies a row; row position if unset.")


SourceSpec = Annotated[
    CsvSourceSpec | ParquetSourceSpec | JsonlSourceSpec | ExcelSourceSpec | MysqlSourceSpec | InlineSourceSpec,
    Field(discriminator="kind"),
]


class _FileSinkSpec(StrictModel):
    """A file the output is written to."""

    path: str = Field(min_length=1,
                      description="Where the output file goes (written to a temporary file, then renamed into place).")


class ExcelSinkSpec(_FileSinkSpec):
    """Output to an Excel workbook."""

    kind: Literal["excel"] = Field(description="`excel`: an .xlsx workbook.")


class CsvSinkSpec(_FileSinkSpec):
    """Output to a CSV file."""

    kind: Literal["csv"] = Field(description="`csv`: a CSV file.")
    escape_formulas: bool = Field(True, description="A text cell that a spreadsheet would run as a formula (it starts "
                                                    "with =, +, -, @, a tab or a carriage return, and is not a "
                                                    "number) is written with a ' before it; false writes it as it "
                                                    "is.")


class ParquetSinkSpec(_FileSinkSpec):
    """Output to a Parquet file."""

    kind: Literal["parquet"] = Field(description="`parquet`: a Parquet file.")


class JsonlSinkSpec(_FileSinkSpec):
    """Output to a JSON Lines file."""

    kind: Literal["jsonl"] = Field(description="`jsonl`: JSON Lines.")


class MysqlSinkSpec(StrictModel):
    """Answers written back into a MySQL/MariaDB table."""

    kind: Literal["mysql"] = Field(description="`mysql`: each answer written back into its row of a MySQL/MariaDB "
                                               "table, by key.")
    connection: Connection | None = Field(None, description="A connection's name (or an inline one); defaults to "
                                                            "the source's connection.")
    table: str | None = Field(None, description="Defaults to the source's table.")
    key: str | None = Field(None, description="Column rows are updated by; defaults to the source's key.")


SinkSpec = Annotated[
    ExcelSinkSpec | CsvSinkSpec | ParquetSinkSpec | JsonlSinkSpec | MysqlSinkSpec,
    Field(discriminator="kind"),
]

