"""How columns flow through a workflow's steps, asked of a whole spec: the steps rows go through, the models asked,
the output columns.

A one-step workflow (top-level `columns` and `prompt`) is the pipeline of one prompt step; its results are
stored as they always were (one per row). A workflow with `steps` also stores one result per (row, step, model).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.spec.asking import ModelChoice, Retry
from engine.spec.base import Location
from engine.spec.models import WorkflowSpec
from engine.spec.step_flow import step_location, step_targets, written_columns
from engine.spec.step_models import EmbedStep, PromptStep, Step, VectorsInText

ONE_STEP_ID = "prompt"  # the step id of a one-step workflow (in progress and in errors)


def pipeline(spec: WorkflowSpec) -> list[Step]:
    """The steps rows go through: `steps`, or the one prompt step of a one-step workflow."""
    if spec.steps is not None:
        return list(spec.steps)
    assert spec.columns is not None and spec.prompt is not None
    return [PromptStep(id=ONE_STEP_ID, kind="prompt", input=spec.columns.input, output=spec.columns.output,
                       prompt=spec.prompt, validation=spec.validation, model=spec.model, retry=spec.retry)]


@dataclass(frozen=True)
class RunStep:
    """A prompt step as it runs: with the workflow's model choice and retries where it sets none."""

    step: PromptStep
    model: ModelChoice
    retry: Retry

    @classmethod
    def of(cls, spec: WorkflowSpec, step: PromptStep) -> RunStep:
        """`step` of `spec`, its defaults filled in."""
        return cls(step, step.model or spec.model, step.retry or spec.retry)

    @property
    def targets(self) -> list[str]:
        """The models a row is sent to: each of a fan-out's, or "" (the step's model, one result)."""
        return step_targets(self.step)


def first_prompt(spec: WorkflowSpec) -> RunStep | None:
    """The first prompt step (a one-step workflow's only one), if any."""
    step = next((s for s in pipeline(spec) if isinstance(s, PromptStep)), None)
    return RunStep.of(spec, step) if step is not None else None


def model_names(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    """Every model (or group) name the spec asks, with where it is named."""
    names: list[tuple[Location, str]] = [(("model", "name"), spec.model.name)]
    if spec.model.fallback:
        names.append((("model", "fallback"), spec.model.fallback))
    for index, step in enumerate(spec.steps or []):
        at = step_location(index, step)
        if isinstance(step, PromptStep):
            if step.model is not None:
                names.append(((*at, "model", "name"), step.model.name))
                if step.model.fallback:
                    names.append(((*at, "model", "fallback"), step.model.fallback))
            names += [((*at, "models", i), name) for i, name in enumerate(step.models or [])]
        elif isinstance(step, EmbedStep):
            names.append(((*at, "model"), step.model))
    return names


def output_fields(spec: WorkflowSpec, *, lists_kept: bool) -> dict[str, str]:
    """What a sink writes: stored answer field (a one-step workflow's) or column (a multi-step one's) -> output
    column. Vectors an embed step leaves out of text files are not written where `lists_kept` is false."""
    if spec.steps is None:
        assert spec.columns is not None
        return dict(spec.columns.output)
    return {c.name: c.name for c in written_columns(spec.steps)
            if lists_kept or c.vector is not VectorsInText.OMIT}


def list_columns(spec: WorkflowSpec) -> dict[str, bool]:
    """The columns that hold lists (lists in Parquet and JSONL, JSON text elsewhere): true for vectors."""
    return {c.name: c.vector is not None for c in written_columns(spec.steps or []) if c.vector or c.listing}
