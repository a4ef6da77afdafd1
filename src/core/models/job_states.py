"""Job statuses, priorities, and the one table of legal state transitions."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    """Pick order for queued jobs; declared lowest first (stored as this rank)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class JobAction(StrEnum):
    """What a user can ask of a job through the API."""

    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"


S = JobStatus

# Every legal move, whoever makes it (API user, worker, reaper). Nothing else may change a status.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.PAUSED, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.PAUSED, S.CANCELLING, S.QUEUED}),  # QUEUED: reaper
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.CANCELLING: frozenset({S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
}

# The status an action moves a job to, from each status it is allowed in.
ACTIONS: dict[JobAction, dict[JobStatus, JobStatus]] = {
    JobAction.CANCEL: {S.QUEUED: S.CANCELLED, S.PAUSED: S.CANCELLED, S.RUNNING: S.CANCELLING},
    JobAction.PAUSE: {S.QUEUED: S.PAUSED, S.RUNNING: S.PAUSED},
    JobAction.RESUME: {S.PAUSED: S.QUEUED},
    JobAction.RETRY: {S.FAILED: S.QUEUED, S.CANCELLED: S.QUEUED},
}

FINISHED: frozenset[JobStatus] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether `current -> target` is a legal move."""
    return target in TRANSITIONS[current]


def _check_table() -> None:
    for action, moves in ACTIONS.items():
        for source, target in moves.items():
            assert can_transition(source, target), f"{action}: {source} -> {target} is not in TRANSITIONS"


_check_table()
