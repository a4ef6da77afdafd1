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
    path: str = Field(min_length=1, description="File path, relative to the working directory.")
    key: str | None = Field(None, description="Column whose value identifies a row; row position if unset.")
    batch_size: int = Field(10_000, ge=1, le=1_000_000)


class CsvSourceSpec(_FileSourceSpec):
    kind: Literal["csv"]
    separator: str = Field(",", min_length=1, max_length=1)
    encoding: str = Field("utf8", min_length=1, description="Any Python codec name: utf8, gbk, latin1, ...")


class ParquetSourceSpec(_FileSourceSpec):
    kind: Literal["parquet"]


class JsonlSourceSpec(_FileSourceSpec):
    kind: Literal["jsonl"]


class ExcelSourceSpec(_FileSourceSpec):
    kind: Literal["excel"]
    sheet: int | str = Field(0, description="Sheet name, or its 0-based index.")
    header_row: int = Field(0, ge=0, description="0-based row that holds the column names.")


class MysqlConnection(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str = "root"
    password: str = Field("", description="Use ${ENV_VAR}; resolved when the job runs, never stored resolved.")
    database: str = Field(min_length=1)


class MysqlSourceSpec(StrictModel):
    kind: Literal["mysql"]
    connection: MysqlConnection
    table: str = Field(min_length=1)
    key: str = Field(min_length=1, description="Primary-key column; rows are read and written back by it.")
    where: str | None = Field(None, description="Optional SQL condition that limits the rows read: one condition, "
                                               "no ';' and no comments.")
    batch_size: int = Field(5_000, ge=1, le=1_000_000)

    @field_validator("where")
    @classmethod
    def _one_condition(cls, where: str | None) -> str | None:
        problem = condition_problem(where) if where is not None else None
        if problem is not None:
            raise ValueError(problem)
        return where


class InlineSourceSpec(StrictModel):
    kind: Literal["inline"]
    rows: list[dict[str, Any]] = Field(min_length=1)
    key: str | None = None


SourceSpec = Annotated[
    CsvSourceSpec | ParquetSourceSpec | JsonlSourceSpec | ExcelSourceSpec | MysqlSourceSpec | InlineSourceSpec,
    Field(discriminator="kind"),
]


class RequireMode(StrEnum):
    ALL = "all"
    ANY = "any"


class Select(StrictModel):
    require: RequireMode = Field(RequireMode.ALL, description="All or any input column must be non-empty.")
    skip_filled: bool = Field(True, description="Skip rows whose output columns are already filled.")


class Columns(StrictModel):
    input: list[str] = Field(min_length=1, description="Columns sent to the model.")
    output: dict[str, str] = Field(min_length=1, description="Answer field -> output column.")


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class Prompt(StrictModel):
    system: str = ""
    template: str = Field(min_length=1, description="Uses {record_json} and {column} placeholders.")
    required_fields: list[str] = Field(default_factory=list)
    types: dict[str, FieldType] = Field(default_factory=dict, description="Answer field -> JSON type.")
    json_schema: bool = Field(True, description="Send a JSON schema as response_format when supported.")


class ModelChoice(StrictModel):
    name: str = Field("auto", min_length=1, description="A model, a group, or auto.")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    fallback: str | None = Field(None, description="Model or group used after fallback_after content errors.")
    fallback_after: int = Field(2, ge=1)


class Concurrency(StrictModel):
    in_flight: int = Field(64, ge=1, le=10_000)
    pause_on_api_error_s: float = Field(2.0, ge=0, description="On an API error, every request waits this long "
                                                                "(0: no pause).")
    error_window_s: float = Field(2.0, ge=0, description="After a pause ends, API errors within this many seconds "
                                                         "start no new pause (AI-DataFlux's error window).")
    save_interval_s: float = Field(300.0, gt=0)
    stop_after_api_failures: int = Field(
        50, ge=0, description="Stop the run with an error once this many rows in a row failed with API errors and "
                              "none finished in between (the model is down or refuses the key); 0: never.")


class Retry(StrictModel):
    api_error: int = Field(3, ge=0, le=100)
    content_error: int = Field(1, ge=0, le=100)
    system_error: int = Field(2, ge=0, le=100)


class _FileSinkSpec(StrictModel):
    path: str = Field(min_length=1)


class ExcelSinkSpec(_FileSinkSpec):
    kind: Literal["excel"]


class CsvSinkSpec(_FileSinkSpec):
    kind: Literal["csv"]


class ParquetSinkSpec(_FileSinkSpec):
    kind: Literal["parquet"]


class JsonlSinkSpec(_FileSinkSpec):
    kind: Literal["jsonl"]


class MysqlSinkSpec(StrictModel):
    kind: Literal["mysql"]
    connection: MysqlConnection | None = Field(None, description="Defaults to the source's connection.")
    table: str | None = Field(None, description="Defaults to the source's table.")
    key: str | None = Field(None, description="Column rows are updated by; defaults to the source's key.")


SinkSpec = Annotated[
    ExcelSinkSpec | CsvSinkSpec | ParquetSinkSpec | JsonlSinkSpec | MysqlSinkSpec,
    Field(discriminator="kind"),
]


class WorkflowSpec(StrictModel):
    """One workflow: where rows come from, what is asked, what must come back, where it goes."""

    name: str | None = Field(None, max_length=128)
    description: str | None = None
    source: SourceSpec
    select: Select = Field(default_factory=Select)
    columns: Columns
    prompt: Prompt
    validation: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Answer field -> allowed values."
    )
    model: ModelChoice = Field(default_factory=ModelChoice)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    retry: Retry = Field(default_factory=Retry)
    sink: SinkSpec | None = None

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
