"""Pydantic models of a workflow spec (the YAML a user stores as a workflow version)."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine.spec.sql_condition import condition_problem

# `{record_json}` or `{column}`; a brace followed by a quote (a JSON example in the prompt) is not one.
PLACEHOLDER = re.compile(r"\{(\w[\w .\-]*)\}")
RECORD_JSON = "record_json"


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a spec must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


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


class MysqlConnection(StrictModel):
    """How to reach a MySQL/MariaDB server."""

    host: str = Field("127.0.0.1", description="Server name or address.")
    port: int = Field(3306, ge=1, le=65535, description="Server port.")
    user: str = Field("root", description="User to connect as.")
    password: str = Field("", description="A secret, written only as ${NAME}: resolved when the run starts (on the "
                                          "platform, only names starting with SECRET_PREFIX), never stored resolved.")
    database: str = Field(min_length=1, description="Database (schema) that holds the table.")


class MysqlSourceSpec(StrictModel):
    """Rows from a MySQL/MariaDB table."""

    kind: Literal["mysql"] = Field(description="`mysql`: a MySQL/MariaDB table, read in batches by ascending key.")
    connection: MysqlConnection = Field(description="How to reach the server.")
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


class RequireMode(StrEnum):
    """Whether all input columns, or any, must be filled."""

    ALL = "all"
    ANY = "any"


class Select(StrictModel):
    """Which rows are sent to the model; the others are skipped."""

    require: RequireMode = Field(RequireMode.ALL, description="All or any input column must be non-empty.")
    skip_filled: bool = Field(True, description="Skip rows whose output columns are already filled.")


class Columns(StrictModel):
    """The columns sent, and where each answer field is written."""

    input: list[str] = Field(min_length=1, description="Columns sent to the model.")
    output: dict[str, str] = Field(min_length=1, description="Answer field -> output column.")


class FieldType(StrEnum):
    """A JSON type an answer field must have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class Prompt(StrictModel):
    """What each row asks, and what its answer must be."""

    system: str = Field("", description="The system message sent before each row's prompt (none if empty).")
    template: str = Field(min_length=1, description="Uses {record_json} and {column} placeholders.")
    required_fields: list[str] = Field(default_factory=list,
                                       description="Answer fields that must be present and non-empty; default: every "
                                                   "output field.")
    types: dict[str, FieldType] = Field(default_factory=dict, description="Answer field -> JSON type.")
    json_schema: bool = Field(True, description="Send a JSON schema as response_format when supported.")


class ModelChoice(StrictModel):
    """The model that answers, and a fallback."""

    name: str = Field("auto", min_length=1, description="A model, a group, or auto.")
    temperature: float | None = Field(None, ge=0, le=2,
                                      description="Sampling temperature; unset: the model's (or its gateway entry's) "
                                                  "default.")
    max_tokens: int | None = Field(None, ge=1, description="Longest answer, in tokens; unset: the model's default.")
    fallback: str | None = Field(None, description="Model or group used after fallback_after content errors.")
    fallback_after: int = Field(2, ge=1,
                                description="Content errors of a row before it is asked of the fallback model.")


class Concurrency(StrictModel):
    """How many rows at once, and what an upstream error does to the run."""

    in_flight: int = Field(64, ge=1, le=10_000,
                           description="Rows sent at once; a finished row's slot goes to the next row at once.")
    pause_on_api_error_s: float = Field(2.0, ge=0, description="On an API error, every request waits this long "
                                                                "(0: no pause).")
    error_window_s: float = Field(2.0, ge=0, description="After a pause ends, API errors within this many seconds "
                                                         "start no new pause (AI-DataFlux's error window).")
    save_interval_s: float = Field(300.0, gt=0,
                                   description="During a long run, the output written so far is saved this often "
                                               "(seconds).")
    stop_after_api_failures: int = Field(
        50, ge=0, description="Stop the run with an error once this many rows in a row failed with API errors and "
                              "none finished in between (the model is down or refuses the key); 0: never.")


class Retry(StrictModel):
    """Retries of a row, by kind of error."""

    api_error: int = Field(3, ge=0, le=100,
                           description="Retries of a row after upstream failures (timeouts, 429, 5xx, malformed "
                                       "answers).")
    content_error: int = Field(1, ge=0, le=100,
                               description="Times a row is asked again after an answer that breaks the contract (with "
                                           "the reason).")
    system_error: int = Field(2, ge=0, le=100,
                              description="Retries of a row after an unexpected error on Rowloom's side.")


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
    connection: MysqlConnection | None = Field(None, description="Defaults to the source's connection.")
    table: str | None = Field(None, description="Defaults to the source's table.")
    key: str | None = Field(None, description="Column rows are updated by; defaults to the source's key.")


SinkSpec = Annotated[
    ExcelSinkSpec | CsvSinkSpec | ParquetSinkSpec | JsonlSinkSpec | MysqlSinkSpec,
    Field(discriminator="kind"),
]


class CacheMode(StrEnum):
    """How a workflow uses the answer cache."""

    USE = "use"
    REFRESH = "refresh"
    OFF = "off"


class Cache(StrictModel):
    """Answers kept by everything that decides them (messages, model, parameters, answer schema), so the same
    prompt is bought once: within a run, across runs, and across workflows."""

    mode: CacheMode = Field(CacheMode.USE, description="`use`: a stored answer is reused; `refresh`: answers stored "
                                                       "before this run are asked again (and replaced); `off`: every "
                                                       "row is asked, and nothing is stored.")
    ttl_s: float | None = Field(None, gt=0, description="Seconds a stored answer stays good; unset: forever.")


class WorkflowSpec(StrictModel):
    """One workflow: where rows come from, what is asked, what must come back, where it goes."""

    name: str | None = Field(None, max_length=128,
                             description="The workflow's name (also its name on the platform when none is given with "
                                         "the upload).")
    description: str | None = Field(None, description="Free text for people.")
    source: SourceSpec = Field(description="Where the rows come from.")
    select: Select = Field(default_factory=Select, description="Which rows are sent.")
    columns: Columns = Field(description="The columns sent to the model and the columns its answers go to.")
    prompt: Prompt = Field(description="What each row asks, and the answer it must give.")
    validation: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Answer field -> allowed values."
    )
    model: ModelChoice = Field(default_factory=ModelChoice, description="Which model (or group) answers, and how.")
    concurrency: Concurrency = Field(default_factory=Concurrency,
                                     description="How many rows at once, and how the run reacts to upstream errors.")
    retry: Retry = Field(default_factory=Retry, description="How often a failing row is tried again, by kind of error.")
    cache: Cache = Field(default_factory=Cache, description="Whether answers are reused for the same prompt.")
    sink: SinkSpec | None = Field(None,
                                  description="Where the results go; unset: a file of the source's kind beside it (a "
                                              "job: its own folder).")

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> WorkflowSpec:
        # The loader asks to defer these so that it can place each one at its YAML line.
        if not (info.context or {}).get(DEFER_REFERENCES):
            for location, message in reference_errors(self):
                raise ValueError(f"{'.'.join(map(str, location))}: {message}")
        return self


DEFER_REFERENCES = "defer_reference_checks"
Location = tuple[str | int, ...]


def reference_errors(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    """Errors between sections (placeholders, field names) that no single field can see."""
    errors: list[tuple[Location, str]] = []
    inputs = set(spec.columns.input)
    for placeholder in PLACEHOLDER.findall(spec.prompt.template):
        if placeholder != RECORD_JSON and placeholder not in inputs:
            errors.append((("prompt", "template"),
                           f"placeholder {{{placeholder}}} names no input column "
                           f"(inputs: {', '.join(spec.columns.input)}; or use {{record_json}})"))
    answer_fields = set(spec.columns.output) | set(spec.prompt.required_fields)
    for field in spec.validation:
        if field not in answer_fields:
            errors.append((("validation", field), "not an output field or a required field"))
    for field in spec.prompt.types:
        if field not in answer_fields:
            errors.append((("prompt", "types", field), "not an output field or a required field"))
    sink = spec.sink
    if isinstance(sink, MysqlSinkSpec) and not isinstance(spec.source, MysqlSourceSpec) and None in (
            sink.connection, sink.table, sink.key):
        errors.append((("sink",), "a mysql sink needs connection, table and key unless the source is mysql"))
    return errors


@cache
def field_names(root: type[BaseModel]) -> frozenset[str]:
    """Every field name used anywhere in a model tree (for "did you mean" hints)."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [root]
    while pending:
        model = pending.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(name)
            pending += [m for m in _models_in(field.annotation) if m not in seen]
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
