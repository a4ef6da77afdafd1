"""Pydantic models of a workflow spec (the YAML a user stores as a workflow version)."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, model_validator

from engine.spec.asking import FieldType, ModelChoice, Prompt, Retry, RunMode, duration_s
from engine.spec.base import PLACEHOLDER, RECORD_JSON, Location, StrictModel
from engine.spec.io_models import (
    CsvSinkSpec,
    CsvSourceSpec,
    ExcelSinkSpec,
    ExcelSourceSpec,
    InlineSourceSpec,
    JsonlSinkSpec,
    JsonlSourceSpec,
    MysqlConnection,
    MysqlSinkSpec,
    MysqlSourceSpec,
    ParquetSinkSpec,
    ParquetSourceSpec,
    SinkSpec,
    SourceSpec,
)
from engine.spec.step_flow import flow_errors, step_location
from engine.spec.step_models import EmbedStep, FilterStep, PromptStep, RetrieveStep, Step

__all__ = ["PLACEHOLDER", "RECORD_JSON", "CsvSinkSpec", "CsvSourceSpec", "EmbedStep", "ExcelSinkSpec",
           "ExcelSourceSpec", "FieldType", "FilterStep", "InlineSourceSpec", "JsonlSinkSpec", "JsonlSourceSpec",
           "Location", "ModelChoice", "MysqlConnection", "MysqlSinkSpec", "MysqlSourceSpec", "ParquetSinkSpec",
           "ParquetSourceSpec", "Prompt", "PromptStep", "RetrieveStep", "Retry", "RunMode", "SinkSpec", "SourceSpec",
           "Step", "StrictModel"]


MAX_STEPS = 64  # a workflow's steps: each is checked against every earlier one at POST


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
    columns: Columns | None = Field(None, description="A one-step workflow: the columns sent to the model and the "
                                                      "columns its answers go to (with `prompt`; or use `steps`).")
    prompt: Prompt | None = Field(None, description="A one-step workflow: what each row asks, and the answer it "
                                                    "must give (with `columns`).")
    steps: list[Step] | None = Field(None, min_length=1, max_length=MAX_STEPS, description=(
        "A multi-step workflow (instead of `columns` and `prompt`): each row goes through these steps in order, "
        "each reading columns of the source or of earlier steps and writing its own."))
    validation: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Answer field -> allowed values."
    )
    model: ModelChoice = Field(default_factory=ModelChoice,
                               description="Which model (or group) answers, and how (in a multi-step workflow: for "
                                           "each prompt step that sets no `model` of its own).")
    concurrency: Concurrency = Field(default_factory=Concurrency,
                                     description="How many rows at once, and how the run reacts to upstream errors.")
    retry: Retry = Field(default_factory=Retry, description="How often a failing row is tried again, by kind of "
                                                            "error (in a multi-step workflow: each step's default).")
    cache: Cache = Field(default_factory=Cache, description="Whether answers are reused for the same prompt.")
    mode: RunMode = Field(RunMode.LIVE, description=(
        "How prompt and embed requests are sent (a step's own `mode` wins): `live`, one by one as rows come; `batch`, "
        "in provider batches at the batch price (answers within the deployment's window, usually an hour, at most "
        "24 h); `auto`, in batches when the model has a deployment that takes them and the `deadline` leaves the "
        "whole window, live otherwise."))
    deadline: Annotated[float | None, BeforeValidator(duration_s)] = Field(None, gt=0, description=(
        "Seconds (or a text such as `90m`, `6h`, `2d`) from the first batch by which the answers must be in: once "
        "it is near (5% of it left), open batches are cancelled and what remains is sent live. With `auto`, a "
        "deadline shorter than the batch window means live."))
    sink: SinkSpec | None = Field(None,
                                  description="Where the results go; unset: a file of the source's kind beside it (a "
                                              "job: its own folder).")

    @model_validator(mode="after")
    def _steps_or_one_prompt(self) -> WorkflowSpec:
        if self.steps is None and (self.columns is None or self.prompt is None):
            raise ValueError("give columns and prompt (a one-step workflow), or steps")
        given = [name for name in ("columns", "prompt", "validation") if getattr(self, name)]
        if self.steps is not None and given:
            raise ValueError(f"with steps, {', '.join(given)} belong inside each prompt step")
        return self

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> WorkflowSpec:
        # The loader asks to defer these so that it can place each one at its YAML line.
        if not (info.context or {}).get(DEFER_REFERENCES):
            for location, message in reference_errors(self):
                raise ValueError(f"{'.'.join(map(str, location))}: {message}")
        return self


DEFER_REFERENCES = "defer_reference_checks"


def reference_errors(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    """Errors between sections (placeholders, field names) that no single field can see."""
    errors = _sink_errors(spec)
    if spec.steps is not None:
        return flow_errors(spec.steps) + errors
    assert spec.columns is not None and spec.prompt is not None
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
    return errors


def mysql_output(spec: WorkflowSpec) -> MysqlSinkSpec | None:
    """The MySQL table a spec writes its answers back to, if any: its mysql sink, or with no sink its MySQL source's
    table; the sink's connection, table and key default to the source's."""
    sink, source = spec.sink, spec.source
    if not isinstance(sink, MysqlSinkSpec) and not (sink is None and isinstance(source, MysqlSourceSpec)):
        return None
    sink = sink or MysqlSinkSpec(kind="mysql")
    if not isinstance(source, MysqlSourceSpec):
        return sink
    return MysqlSinkSpec(kind="mysql", connection=sink.connection or source.connection,
                         table=sink.table or source.table, key=sink.key or source.key)


def _sink_errors(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    output = mysql_output(spec)
    if output is not None and None in (output.connection, output.table, output.key):
        return [(("sink",), "a mysql sink needs connection, table and key unless the source is mysql")]
    return []


def io_sections(spec: WorkflowSpec) -> list[tuple[Location, SourceSpec | SinkSpec | None]]:
    """Every source and sink a spec names (its own, and each retrieve step's knowledge table), with where."""
    sections: list[tuple[Location, SourceSpec | SinkSpec | None]] = [(("source",), spec.source),
                                                                       (("sink",), spec.sink)]
    for index, step in enumerate(spec.steps or []):
        if isinstance(step, RetrieveStep):
            sections.append(((*step_location(index, step), "knowledge", "source"), step.knowledge.source))
    return sections


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
