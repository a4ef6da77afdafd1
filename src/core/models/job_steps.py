"""The API's view of a multi-step job's results by step and model."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class StepModelPublic(SQLModel):
    """One model's results in a step (the step's only model: `model` is empty)."""

    model: str = Field(description="The model a fan-out asked, as the step lists it; empty for a step of one model.")
    done: int = Field(description="Rows with a valid result.")
    failed: int = Field(description="Rows that failed here (with their reasons in the step's items).")
    tokens_in: int
    tokens_out: int
    cost: float = Field(description="Cost of every attempt (retries included).")
    cached: int = Field(description="Results taken from the answer cache (no request sent).")
    mean_latency_s: float | None = Field(description="Mean seconds a row took in this step (all its attempts).")


class AgreementPublic(SQLModel):
    """How a fan-out's models agreed on one compared field, over the rows whose models all answered."""

    field: str = Field(description="The compared answer field.")
    column: str = Field(description="The agreement column it is read from.")
    rows: int = Field(description="Rows compared.")
    all: float | None = Field(description="Share of rows where every model gave the same value.")
    majority: float | None = Field(description="Share where more than half did, but not all.")
    none: float | None = Field(description="Share where no value had a majority.")


class StepPublic(SQLModel):
    """One step of the workflow, with its results by model."""

    id: str
    kind: str = Field(description="prompt, embed, retrieve or filter")
    models: list[StepModelPublic]
    agreement: list[AgreementPublic] = Field(description="A fan-out with `compare`: each compared field's "
                                                         "agreement rates; empty otherwise.")


class StepsPublic(SQLModel):
    """A job's steps in order (empty for a one-step workflow)."""

    steps: list[StepPublic]
