"""Job statuses, priorities, and the one table of legal state transitions."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # running, its requests out in provider batches: held by no worker between polls
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


# Every legal move, whoever makes it (API user, worker, reaper). Nothing else may change a status.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({  # QUEUED: the reaper, or a worker shutting down, hands the job back
        JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PAUSED, JobStatus.CANCELLING, JobStatus.QUEUED,
        JobStatus.WAITING}),
    JobStatus.WAITING: frozenset({  # RUNNING: its batches ended and its rows go on
        JobStatus.RUNNING, JobStatus.FAILED, JobStatus.PAUSED, JobStatus.CANCELLING, JobStatus.QUEUED}),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
}

# The status an action moves a job to, from each status it is allowed in.
ACTIONS: dict[JobAction, dict[JobStatus, JobStatus]] = {
    JobAction.CANCEL: {JobStatus.QUEUED: JobStatus.CANCELLED, JobStatus.PAUSED: JobStatus.CANCELLED,
                       JobStatus.RUNNING: JobStatus.CANCELLING, JobStatus.WAITING: JobStatus.CANCELLING},
    JobAction.PAUSE: {JobStatus.QUEUED: JobStatus.PAUSED, JobStatus.RUNNING: JobStatus.PAUSED,
                      JobStatus.WAITING: JobStatus.PAUSED},
    JobAction.RESUME: {JobStatus.PAUSED: JobStatus.QUEUED},
    JobAction.RETRY: {JobStatus.FAILED: JobStatus.QUEUED, JobStatus.CANCELLED: JobStatus.QUEUED},
}

FINISHED: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether `current -> target` is a legal move."""
    return target in TRANSITIONS[current]


def _check_table() -> None:
    for action, moves in ACTIONS.items():
        for source, target in moves.items():
            assert can_transition(source, target), f"{action}: {source} -> {target} is not in TRANSITIONS"


_check_table()
