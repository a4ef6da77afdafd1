"""The API schema of a run's estimate: rows, tokens, cost and time before anything is sent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine import Estimate


class BatchCost(BaseModel):
    """Cost in provider batches, at the deployments' batch prices."""

    low: float
    expected: float
    high: float

    @classmethod
    def of(cls, cost: tuple[float, float, float] | None) -> BatchCost | None:
        """From the engine's (low, expected, high)."""
        return None if cost is None else cls(low=cost[0], expected=cost[1], high=cost[2])


class ModelEstimatePublic(BaseModel):
    """One candidate model's part of the run, by its routing weight."""

    name: str = Field(description="The model's name in the gateway config.")
    model: str = Field(description="The name sent upstream.")
    tokenizer: str = Field(description="What counted its tokens: an encoding (o200k_base, cl100k_base) or "
                                       "`approximate` (4 characters a token).")
    share: float = Field(description="Its share of the rows.")
    rows: float
    input_tokens: int
    output_tokens: int = Field(description="Expected output tokens.")
    cost_low: float
    cost_expected: float
    cost_high: float
    batch_cost: BatchCost | None = Field(None, description="What its part would cost in provider batches (null: "
                                                           "it takes none).")


class EstimatePublic(BaseModel):
    """What a job would send and cost; no model was called to work it out."""

    rows_total: int = Field(description="Rows in the source.")
    rows_skipped: int = Field(description="Rows `select` leaves out (inputs missing, outputs already filled).")
    rows_done: int = Field(description="Rows already done (a resumed run).")
    rows_to_send: int
    rows_cached: int = Field(description="Rows the answer cache would answer (an identical request answered "
                                         "before, or met earlier in the job): nothing sent for them.")
    input_tokens: int = Field(description="Every row's prompt, counted by each model's tokenizer, by share.")
    output_tokens_low: int
    output_tokens_expected: int
    output_tokens_high: int
    output_basis: str = Field(description="What the output tokens rest on: earlier jobs' answers, the answer's "
                                          "fields, max_tokens.")
    cost_low: float
    cost_expected: float
    cost_high: float
    seconds: float | None = Field(description="Time the models' safe_rps and tpm need; null when a model has no "
                                              "limit (then as fast as the models answer).")
    seconds_basis: str
    models: list[ModelEstimatePublic]
    batch_cost: BatchCost | None = Field(None, description=(
        "Beside the live cost: the same run with the models that take provider batches (`batch` in the gateway "
        "config) sending them, at their batch prices; null when none of them does."))

    @classmethod
    def from_estimate(cls, estimate: Estimate) -> EstimatePublic:
        """The engine's estimate as the API shows it."""
        fields = {k: v for k, v in vars(estimate).items() if k not in ("models", "batch_cost")}
        return cls(**fields, batch_cost=BatchCost.of(estimate.batch_cost),
                   models=[ModelEstimatePublic(**(vars(m) | {"batch_cost": BatchCost.of(m.batch_cost)}))
                           for m in estimate.models])
