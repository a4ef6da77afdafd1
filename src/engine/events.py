"""What a run reports while it goes: the engine's events, which a job records beside its own life's."""

from __future__ import annotations

from enum import StrEnum


class RunEvent(StrEnum):
    """Every kind of event a run reports through its `on_event` callback."""

    PAUSED_FOR_API_ERRORS = "paused_for_api_errors"
    PAUSED_FOR_BUDGET = "paused_for_budget"
    OUTPUT_SAVED = "output_saved"
    OUTPUT_WRITTEN = "output_written"
    BATCH_SUBMITTED = "batch_submitted"
    BATCH_ENDED = "batch_ended"
