"""The kinds of event a job records: one enum for the engine, the worker and the API."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Every kind of job event: the platform's (a job's life) and the engine's (what a run reports)."""

    CREATED = "created"
    ENQUEUED = "enqueued"
    CLAIMED = "claimed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUMED = "resumed"
    RETRIED = "retried"
    REQUEUED = "requeued"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED_FOR_API_ERRORS = "paused_for_api_errors"
    PAUSED_FOR_BUDGET = "paused_for_budget"
    OUTPUT_SAVED = "output_saved"
    OUTPUT_WRITTEN = "output_written"
