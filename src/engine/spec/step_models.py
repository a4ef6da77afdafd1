"""The steps of a multi-step workflow: prompt (one model or a fan-out), embed, retrieve and filter."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from engine.spec.asking import MAX_TEMPLATE, STEP_MODE, ModelChoice, Prompt, Retry, RunMode
from engine.spec.base import StrictModel
from engine.spec.io_models import SourceSpec

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
MODEL_PLACEHOLDER = "{model}"
COLUMN_PLACEHOLDER = "{column}"
FIELD_PLACEHOLDER = "{field}"
Scalar = str | int | float | bool


class _Step(StrictModel):
    id: str = Field(pattern=STEP_ID, description="The step's name: letters, digits, `_` and `-`, unique in the "
                                                 "workflow (items and progress are reported by it).")


class Compare(StrictModel):
    """An agreement column per compared answer field of a fan-out."""

    fields: list[str] = Field(min_length=1, description="Answer fields whose values the models' answers are "
                                                        "compared on.")
    column: str = Field("{field}_agreement", min_length=1,
                        description="The agreement column of each field ({field} is the field's name). It holds "
                                    "`all` (every model gave the same value), `majority` (more than half did) or "
                                    "`none`.")
    value_column: str = Field("{field}_consensus", min_length=1,
                              description="The column of the agreed value ({field} as above): the value all or most "
                                          "models gave, empty when none has a majority.")


class PromptStep(_Step):
    """Asks a model (or, with `models`, several at once) about each row, as a one-step workflow does."""

    kind: Literal["prompt"] = Field(description="`prompt`: a chat request a row, its answer checked.")
    input: list[str] = Field(min_length=1, description="Columns sent, from the source or earlier steps.")
    output: dict[str, str] = Field(min_length=1, description="Answer field -> output column.")
    prompt: Prompt = Field(description="What each row asks, and the answer it must give.")
    validation: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Answer field -> allowed values.")
    model: ModelChoice | None = Field(None, description="Which model answers, and how; unset: the workflow's "
                                                        "`model`.")
    models: list[str] | None = Field(None, min_length=2, description=(
        "Fan-out: every row goes to each of these models (names or groups) at once, and each model's answer is "
        "written to its own columns (see `columns_per_model`); `model` still gives temperature and max_tokens."))
    columns_per_model: str = Field("{column}_{model}", description=(
        "With `models`: the name of a model's column, from the output column ({column}) and the model ({model})."))
    compare: Compare | None = Field(None, description="With `models`: columns saying whether the models agree.")
    retry: Retry | None = Field(None, description="Retries by kind of error; unset: the workflow's `retry`.")
    mode: RunMode | None = Field(None, description=STEP_MODE)

    @model_validator(mode="after")
    def _fan_out_fields(self) -> PromptStep:
        if self.models is None and self.compare is not None:
            raise ValueError("compare needs models: a list of the models to compare")
        if self.models is not None:
            if len(set(self.models)) != len(self.models):
                raise ValueError("models: each model once")
            if MODEL_PLACEHOLDER not in self.columns_per_model:
                raise ValueError("columns_per_model must contain {model}, or the models' columns would collide")
        return self


class VectorsInText(StrEnum):
    """How a vector is written where a cell holds text only (CSV, Excel)."""

    JSON = "json"
    OMIT = "omit"


class EmbedStep(_Step):
    """Turns a text column, or a rendered template, into a vector through the gateway's embedding models."""

    kind: Literal["embed"] = Field(description="`embed`: an embedding vector a row.")
    input: str | None = Field(None, description="The text column embedded (from the source or an earlier step).")
    template: str | None = Field(None, max_length=MAX_TEMPLATE,
                                 description="Instead of `input`: a text made of {column} placeholders.")
    output: str = Field(min_length=1, description="The column the vector goes to.")
    model: str = Field("auto", min_length=1, description="The embedding model: a name, a group, or `auto`.")
    batch_size: int = Field(64, ge=1, le=2048, description="Rows embedded in one live request, at most (in batch "
                                                           "mode each row is a line of its own).")
    text_files: VectorsInText = Field(VectorsInText.JSON, description=(
        "CSV and Excel outputs: `json` writes the vector as JSON text, `omit` leaves its column out (an Excel cell "
        "holds at most 32,767 characters: a vector of more than about 1,500 numbers does not fit). Parquet and "
        "JSONL always hold it as a list of numbers."))
    retry: Retry | None = Field(None, description="Retries by kind of error; unset: the workflow's `retry`.")
    mode: RunMode | None = Field(None, description=STEP_MODE)

    @model_validator(mode="after")
    def _one_text(self) -> EmbedStep:
        if (self.input is None) == (self.template is None):
            raise ValueError("give either input (a column) or template (a text with {column} placeholders)")
        return self


class Knowledge(StrictModel):
    """The table a retrieve step searches."""

    source: SourceSpec = Field(description="Where its rows are: a file or a MySQL table, as a workflow's source.")
    text: str = Field(min_length=1, description="The column holding each row's text (what is embedded and "
                                                "returned).")
    id: str | None = Field(None, description="The column identifying a row; unset: its position.")


class RetrieveStep(_Step):
    """The nearest rows of a knowledge table to each row's vector (cosine similarity, exact top-k)."""

    kind: Literal["retrieve"] = Field(description="`retrieve`: the top-k texts of a knowledge table a row.")
    query: str = Field(min_length=1, description="The vector column of an earlier embed step; the knowledge "
                                                 "table is embedded by that step's model.")
    knowledge: Knowledge = Field(description="The table searched; its vectors are made once and kept by content.")
    top_k: int = Field(5, ge=1, le=100, description="How many nearest rows.")
    output: str = Field(min_length=1, description="The context column: the rows' texts, nearest first.")
    format: str = Field("[{id}] {text}", min_length=1,
                        description="How each retrieved row is written in the context: {id}, {text}, {score}.")
    separator: str = Field("\n\n", description="Between retrieved rows in the context.")
    ids_output: str | None = Field(None, description="Optional column of the retrieved rows' ids (a list).")
    scores_output: str | None = Field(None, description="Optional column of their similarity scores (a list).")


class FilterStep(_Step):
    """Decides whether a row goes on to the next steps; a row stopped here is done with what it has."""

    kind: Literal["filter"] = Field(description="`filter`: a condition on a column (of the source or an earlier "
                                                "step).")
    column: str = Field(min_length=1, description="The column the condition is on.")
    equals: Scalar | None = Field(None, description="Go on only when the column equals this value.")
    not_equals: Scalar | None = Field(None, description="Go on only when it does not.")
    one_of: list[Scalar] | None = Field(None, min_length=1, description="Go on only when it is one of these.")
    none_of: list[Scalar] | None = Field(None, min_length=1, description="Go on only when it is none of these.")
    filled: bool | None = Field(None, description="`true`: go on only when the column is non-empty; `false`: "
                                                  "only when it is empty.")

    @model_validator(mode="after")
    def _one_condition(self) -> FilterStep:
        given = [name for name in ("equals", "not_equals", "one_of", "none_of", "filled")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one condition: equals, not_equals, one_of, none_of or filled"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    def passes(self, value: Any) -> bool:
        """Whether a row with `value` in the column goes on."""
        if self.filled is not None:
            return _filled(value) == self.filled
        if self.equals is not None:
            return _same(value, self.equals)
        if self.not_equals is not None:
            return not _same(value, self.not_equals)
        if self.one_of is not None:
            return any(_same(value, choice) for choice in self.one_of)
        assert self.none_of is not None
        return not any(_same(value, choice) for choice in self.none_of)


def _filled(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _same(value: Any, expected: Scalar) -> bool:
    """Equal as values, or as text (a CSV column holds "3" where the YAML says 3); true is not 1."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected or (isinstance(value, str) and value.lower() == str(expected).lower())
    return value == expected or (value is not None and str(value) == str(expected))


Step = Annotated[PromptStep | EmbedStep | RetrieveStep | FilterStep, Field(discriminator="kind")]
