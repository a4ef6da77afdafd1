"""How columns flow between a workflow's steps: what each step reads and writes, and the checks on that flow.

These need only the steps; `flow` answers the same questions of a whole spec (a one-step workflow included).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.spec.base import PLACEHOLDER, RECORD_JSON, Location
from engine.spec.step_models import (
    COLUMN_PLACEHOLDER,
    FIELD_PLACEHOLDER,
    MODEL_PLACEHOLDER,
    EmbedStep,
    PromptStep,
    RetrieveStep,
    Step,
    VectorsInText,
)


@dataclass(frozen=True)
class WrittenColumn:
    """A column a step writes: its name, the step, and whether it holds a vector (how it goes into text files)."""

    name: str
    step: str
    vector: VectorsInText | None = None
    listing: bool = False  # a list of values (retrieved ids or scores): JSON text in CSV and Excel


def step_location(index: int, step: Step) -> Location:
    """Where a step is, as validation errors name it: its place in `steps`, then its kind (the union's tag)."""
    return "steps", index, step.kind


def step_targets(step: Step) -> list[str]:
    """The models a step stores a result of for each row: each of a fan-out's, or "" (one result)."""
    return list(step.models) if isinstance(step, PromptStep) and step.models else [""]


def model_columns(step: PromptStep, model: str) -> dict[str, str]:
    """Answer field -> column of one model of a fan-out (the step's own columns without `models`)."""
    if step.models is None:
        return dict(step.output)
    return {field: step.columns_per_model.replace(COLUMN_PLACEHOLDER, column).replace(MODEL_PLACEHOLDER, model)
            for field, column in step.output.items()}


def compare_columns(step: PromptStep) -> dict[str, tuple[str, str]]:
    """Compared field -> (agreement column, agreed value column) of a fan-out with `compare`."""
    if step.compare is None:
        return {}
    return {field: (step.compare.column.replace(FIELD_PLACEHOLDER, field),
                    step.compare.value_column.replace(FIELD_PLACEHOLDER, field)) for field in step.compare.fields}


def step_reads(step: Step) -> Iterator[tuple[Location, str]]:
    """The columns a step reads, each with where the spec names it (relative to the step)."""
    if isinstance(step, PromptStep):
        for index, column in enumerate(step.input):
            yield ("input", index), column
    elif isinstance(step, EmbedStep):
        if step.input is not None:
            yield ("input",), step.input
        for name in PLACEHOLDER.findall(step.template or ""):
            yield ("template",), name
    elif isinstance(step, RetrieveStep):
        yield ("query",), step.query
    else:
        yield ("column",), step.column


def step_writes(step: Step) -> list[WrittenColumn]:
    """The columns a step writes, in the order they are added to the output."""
    if isinstance(step, PromptStep):
        models = step.models or [""]
        written = [WrittenColumn(column, step.id) for model in models
                   for column in model_columns(step, model).values()]
        return written + [WrittenColumn(column, step.id) for pair in compare_columns(step).values() for column in pair]
    if isinstance(step, EmbedStep):
        return [WrittenColumn(step.output, step.id, vector=step.text_files)]
    if isinstance(step, RetrieveStep):
        return [WrittenColumn(step.output, step.id),
                *(WrittenColumn(c, step.id, listing=True) for c in (step.ids_output, step.scores_output) if c)]
    return []


def written_columns(steps: list[Step]) -> list[WrittenColumn]:
    """Every column the steps write, in order."""
    return [column for step in steps for column in step_writes(step)]


def source_inputs(steps: list[Step]) -> list[str]:
    """The source columns the steps read (those no earlier step writes), in the order they are first read."""
    written: set[str] = set()
    needed: dict[str, None] = {}
    for step in steps:
        for _, column in step_reads(step):
            if column not in written:
                needed.setdefault(column)
        written.update(c.name for c in step_writes(step))
    return list(needed)


def flow_errors(steps: list[Step]) -> list[tuple[Location, str]]:
    """Steps that read a column only a later step writes, ids or columns used twice, and fields that name nothing.

    Errors are located under `steps`; whether the source has the columns a step reads is checked against the
    source itself (`source_column_errors`), where it can be read.
    """
    errors: list[tuple[Location, str]] = []
    writers: dict[str, str] = {}  # column -> step id that writes it
    later = {c.name: c.step for c in written_columns(steps)}
    vectors: dict[str, EmbedStep] = {}
    seen_ids: set[str] = set()
    for index, step in enumerate(steps):
        at = step_location(index, step)
        if step.id in seen_ids:
            errors.append(((*at, "id"), f"step id {step.id!r} is used twice"))
        seen_ids.add(step.id)
        for where, column in step_reads(step):
            if column in later and column not in writers:
                errors.append(((*at, *where), f"column {column!r} is written by step {later[column]!r}, which "
                                              f"comes later (or is this step): a step reads the source and the "
                                              f"steps before it"))
        errors += _step_errors(step, at, vectors)
        for written in step_writes(step):
            if written.name in writers:
                errors.append(((*at,), f"column {written.name!r} is written twice (also by step "
                                       f"{writers[written.name]!r})"))
            writers[written.name] = step.id
        if isinstance(step, EmbedStep):
            vectors[step.output] = step
    return errors


def _step_errors(step: Step, at: Location, vectors: dict[str, EmbedStep]) -> list[tuple[Location, str]]:
    errors: list[tuple[Location, str]] = []
    if isinstance(step, PromptStep):
        inputs = set(step.input)
        for name in PLACEHOLDER.findall(step.prompt.template):
            if name != RECORD_JSON and name not in inputs:
                errors.append(((*at, "prompt", "template"), f"placeholder {{{name}}} names no input column of "
                                                            f"the step (inputs: {', '.join(step.input)})"))
        fields = set(step.output) | set(step.prompt.required_fields)
        errors += [((*at, "validation", f), "not an output field or a required field")
                   for f in step.validation if f not in fields]
        errors += [((*at, "prompt", "types", f), "not an output field or a required field")
                   for f in step.prompt.types if f not in fields]
        if step.compare is not None:
            errors += [((*at, "compare", "fields", i), f"{f!r} is not an answer field of the step")
                       for i, f in enumerate(step.compare.fields) if f not in fields]
    elif isinstance(step, RetrieveStep) and step.query not in vectors:
        errors.append(((*at, "query"), f"{step.query!r} is not the output of an earlier embed step (embedded "
                                       f"columns: {', '.join(vectors) or 'none'})"))
    return errors


def vector_steps(steps: list[Step]) -> dict[str, EmbedStep]:
    """Embed steps by the vector column they write."""
    return {step.output: step for step in steps if isinstance(step, EmbedStep)}
