"""Jobs: one run of a workflow version over its rows. Table and API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, StrictInt
from sqlalchemy import JSON, BigInteger, Column, Double, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.db.types import MAX_ID, BigIntId, LongText, RankedEnum, UtcDateTime, utcnow
from core.models.job_states import JobStatus, Priority

MAX_JOB_NAME = 200
COST_DECIMALS = 10  # a millionth of a cent's ten-thousandth: more than any price needs


class Job(SQLModel, table=True):
    """A job record: the system of record for a run's state, counts, usage and error."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Each list ordering has an index ending in id (the keyset tie-breaker); status and workflow
        # lead where they are the common filters, so filtered pages seek instead of scanning.
        Index(None, "status", "created_at", "id"),
        Index(None, "workflow_id", "created_at", "id"),
        Index(None, "created_at", "id"),
        Index(None, "updated_at", "id"),
        Index(None, "started_at", "id"),
        Index(None, "completed_at", "id"),
        Index(None, "status", "priority", "created_at", "id"),
        UniqueConstraint("created_by", "idempotency_key"),  # a key's Idempotency-Key is its own
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    workflow_id: int = Field(sa_column=Column(BigIntId, ForeignKey("workflows.id"), nullable=False))
    workflow_version_id: int = Field(
        sa_column=Column(BigIntId, ForeignKey("workflow_versions.id"), nullable=False)
    )
    workflow_name: str = Field(sa_type=String(128))  # workflow names never change
    version: int
    name: str = Field(sa_type=String(MAX_JOB_NAME))
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    priority: Priority = Field(default=Priority.NORMAL, sa_type=RankedEnum(Priority))
    status: JobStatus = Field(default=JobStatus.QUEUED, sa_type=String(16))

    rows_total: int | None = None
    rows_done: int = 0
    rows_failed: int = 0
    rows_skipped: int = 0
    rows_cached: int = 0  # of rows_done: answered from the answer cache, nothing sent
    rows_per_s: float | None = Field(default=None, sa_type=Double)
    eta_s: float | None = Field(default=None, sa_type=Double)
    tokens_in: int = Field(default=0, sa_type=BigInteger)
    tokens_out: int = Field(default=0, sa_type=BigInteger)
    cost: float = Field(default=0.0, sa_type=Double)
    cost_saved: float = Field(default=0.0, sa_type=Double)  # what the cached rows' answers had cost
    estimate: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))  # made when triggered
    budget_pause: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))  # who paused it
    batches: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON(none_as_null=True))  # provider batches

    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)

    worker_id: str | None = Field(default=None, sa_type=String(128))
    attempt: int = 0
    lost_leases: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # runs whose worker died
    heartbeat_at: datetime | None = Field(default=None, sa_type=UtcDateTime)  # the running worker's lease
    # Last handed to a queue; for a parked job (waiting, no worker: its provider batches are out), when it is next.
    enqueued_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    output: str | None = Field(default=None, sa_type=String(1024))  # where the sink wrote (path or table)
    models: dict[str, int] | None = Field(default=None, sa_type=JSON)  # rows answered per model
    steps: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))  # per step and model
    error: str | None = Field(default=None, sa_type=LongText)
    trace_id: str | None = Field(default=None, sa_type=String(32))
    idempotency_key: str | None = Field(default=None, sa_type=String(255))
    request_hash: str | None = Field(default=None, sa_type=String(64))
    created_by: int | None = Field(default=None, sa_type=BigIntId)  # the API key that triggered it


# --- API schemas --------------------------------------------------------------------------------


class JobCreate(SQLModel):
    """Trigger a job of a workflow."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={"examples": [{
            "workflow": "ticket-triage",
            "name": "triage november tickets",
            "params": {"source": {"path": "tickets-11.csv"}},
            "priority": "high",
        }]},
    )

    workflow: str | int = Field(description="Workflow name or id.")
    version: StrictInt | None = Field(default=None, ge=1, le=MAX_ID,
                                      description="Defaults to the newest active version.")
    name: str | None = Field(default=None, min_length=1, max_length=MAX_JOB_NAME,
                             description="Defaults to the workflow's name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides merged into the spec for this job (e.g. source.path); the result is validated.",
    )
    priority: Priority = Priority.NORMAL


class JobCounts(SQLModel):
    """Rows by outcome; `total` is unknown (null) until the source has been read."""

    total: int | None
    done: int
    failed: int
    skipped: int
    cached: int = Field(0, description="Of `done`: rows answered from the answer cache, with no request sent.")


class JobUsage(SQLModel):
    """Tokens and cost of every attempt so far; rate and ETA while running."""

    tokens_in: int
    tokens_out: int
    cost: float
    cost_saved: float = Field(0.0, description="What the answers taken from the cache had cost when bought.")
    rows_per_s: float | None
    eta_s: float | None
    models: dict[str, int] = Field(description="Rows answered per model in the current run.")


class JobSummary(SQLModel):
    """A job in a list: no params, no blobs."""

    id: int
    name: str
    workflow_id: int
    workflow_name: str
    version: int
    status: JobStatus
    priority: Priority
    counts: JobCounts
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_job(cls, job: Job) -> JobSummary:
        """Build from a table row."""
        return cls.model_validate(_job_fields(job))


class JobPublic(JobSummary):
    """One job in full."""

    params: dict[str, Any]
    usage: JobUsage
    worker_id: str | None
    heartbeat_at: datetime | None
    error: str | None
    trace_id: str | None
    output: str | None = Field(description="Where the output was written: a file path (relative to DATA_DIR, or "
                                           "inside OUTPUT_ROOT) or a MySQL table.")
    created_by: int | None = Field(description="The id of the API key that triggered the job.")
    estimate: dict[str, Any] | None = Field(
        description="The estimate made when the job was triggered (as POST /jobs/estimate gives it; null until "
                    "it is made, or if the source could not be read then); `usage` holds the actuals.")
    budget_pause: dict[str, Any] | None = Field(
        description="While paused by a budget: which budget, what was spent of its limit, and when it resets.")
    steps: dict[str, dict[str, dict[str, int | float]]] = Field(description=(
        "A multi-step job's results by step id, then by model of a fan-out (\"\" for a step of one model): `done`, "
        "`failed`, `tokens_in`, `tokens_out`, `cost`, `cached` and `latency_s` (summed over the results). A "
        "filter step's `done` counts the rows it looked at. Empty for a one-step job."))
    batches: list[dict[str, Any]] = Field(description=(
        "Batch mode: the job's provider batches, in the order submitted: the provider's `id`, the `deployment`, "
        "`state` (planned, uploaded, submitted, ended, collected), the provider's `status`, `requests`, "
        "`completed` and `failed` lines, and the `cost` of the lines back (at the batch price)."))

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        """Build from a table row."""
        return cls.model_validate(_job_fields(job) | {
            "params": job.params,
            "usage": {"tokens_in": job.tokens_in, "tokens_out": job.tokens_out, "cost": shown_cost(job.cost),
                      "cost_saved": shown_cost(job.cost_saved),
                      "rows_per_s": job.rows_per_s, "eta_s": job.eta_s, "models": job.models or {}},
            "worker_id": job.worker_id,
            "heartbeat_at": job.heartbeat_at,
            "error": job.error,
            "trace_id": job.trace_id,
            "output": job.output,
            "created_by": job.created_by,
            "estimate": job.estimate,
            "budget_pause": job.budget_pause,
            "steps": job.steps or {},
            "batches": job.batches or [],
        })


def shown_cost(cost: float) -> float:
    """A cost as the API shows it: summed floats carry noise past the 10th decimal (0.020976850000000002)."""
    return round(cost, COST_DECIMALS)


# The columns a job list reads; JobSummary is built from these alone.
SUMMARY_COLUMNS = ("id", "name", "workflow_id", "workflow_name", "version", "status", "priority",
                   "rows_total", "rows_done", "rows_failed", "rows_skipped", "rows_cached", "attempt",
                   "created_at", "updated_at", "started_at", "completed_at")


def _job_fields(job: Any) -> dict[str, Any]:
    fields = {name: getattr(job, name) for name in SUMMARY_COLUMNS if not name.startswith("rows_")}
    fields["counts"] = {"total": job.rows_total, "done": job.rows_done,
                        "failed": job.rows_failed, "skipped": job.rows_skipped, "cached": job.rows_cached}
    return fields
