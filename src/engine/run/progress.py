"""Progress of a run: counts, a windowed rate, ETA and usage, reported through a callback."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from engine.results.store import RowResult, RowStatus

RATE_WINDOW_S = 10.0


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run. `done` counts rows answered now or in an earlier run of the same store."""

    total: int | None = None
    done: int = 0
    reused: int = 0  # of `done`: rows answered by an earlier run under the same fingerprint, not sent again
    failed: int = 0
    skipped: int = 0
    rows_per_s: float = 0.0
    eta_s: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cached: int = 0  # of `done`: rows answered from the answer cache, no request made
    saved: float = 0.0  # what those cached answers had cost
    elapsed_s: float = 0.0
    models: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    # A multi-step run's results by step, then by model of a fan-out ("" for a step of one model): counts of
    # done and failed, tokens, cost, cached, and the sum of latencies.
    steps: StepCounts = field(default_factory=dict)

    @property
    def handled(self) -> int:
        """Rows that need nothing more (done, failed or skipped)."""
        return self.done + self.failed + self.skipped


ProgressCallback = Callable[[Progress], None]
StepCounts = dict[str, dict[str, dict[str, float]]]


def added_steps(first: StepCounts, second: StepCounts) -> StepCounts:
    """Two runs' per-step counts added together."""
    total = {step: {target: dict(counts) for target, counts in by_target.items()} for step, by_target in first.items()}
    for step, by_target in second.items():
        for target, counts in by_target.items():
            into = total.setdefault(step, {}).setdefault(target, {})
            for name, value in counts.items():
                into[name] = into.get(name, 0) + value
    return total


class RunRounds:
    """A run in rounds (batch mode): each round's progress as the whole run's, what the earlier rounds made (tokens,
    cost, cached rows, models, steps) added; rows reused are those done before the run, the time is the run's."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.on_progress = on_progress
        self.started = time.monotonic()
        self._before: Progress | None = None  # the rounds ended so far, as a whole

    def seen(self, progress: Progress) -> None:
        """A round's snapshot, passed on as the run's."""
        if self.on_progress is not None:
            self.on_progress(self.whole(progress))

    def ended(self, progress: Progress) -> Progress:
        """A round's last snapshot: the run's so far."""
        self._before = self.whole(progress)
        return self._before

    def whole(self, progress: Progress) -> Progress:
        """The run's progress, a round's with the earlier rounds' added."""
        before = self._before
        elapsed = time.monotonic() - self.started
        if before is None:
            return replace(progress, elapsed_s=elapsed)
        models = Counter(before.models)
        models.update(progress.models)
        return replace(progress, reused=before.reused, elapsed_s=elapsed,
                       tokens_in=before.tokens_in + progress.tokens_in,
                       tokens_out=before.tokens_out + progress.tokens_out, cost=before.cost + progress.cost,
                       cached=before.cached + progress.cached, saved=before.saved + progress.saved,
                       models=dict(models), steps=added_steps(before.steps, progress.steps))


class ProgressTracker:
    """Accumulates counts as results become durable and derives rate and ETA."""

    def __init__(self, total: int | None) -> None:
        self.started = time.monotonic()
        self.snapshot = Progress(total=total)
        self._models: Counter[str] = Counter()
        self._recent: deque[tuple[float, int]] = deque()
        self._steps: StepCounts = {}

    def skipped(self, count: int) -> None:
        """Rows not sent: empty inputs or outputs already filled."""
        self.snapshot = replace(self.snapshot, skipped=self.snapshot.skipped + count)

    def resumed(self, count: int) -> None:
        """Rows already done in the store from an earlier run."""
        self.snapshot = replace(self.snapshot, done=self.snapshot.done + count, reused=self.snapshot.reused + count)

    def finished_steps(self, results: list[RowResult]) -> None:
        """Step results now durable (their rows are counted when their own results are)."""
        for r in results:
            counts = self._steps.setdefault(r.step, {}).setdefault(r.target, {})
            for name, value in ((r.status.value, 1), ("tokens_in", r.tokens_in), ("tokens_out", r.tokens_out),
                                ("cost", r.cost), ("cached", int(r.cached)), ("latency_s", r.latency_s)):
                counts[name] = counts.get(name, 0) + value
        self._add_usage(results)

    def finished_rows(self, results: list[RowResult]) -> None:
        """Rows whose results are now durable."""
        done = sum(r.status is RowStatus.DONE for r in results)
        now = time.monotonic()
        self._recent.append((now, len(results)))
        s = self.snapshot
        self.snapshot = replace(s, done=s.done + done, failed=s.failed + len(results) - done)
        self._add_usage(results)

    def _add_usage(self, results: list[RowResult]) -> None:
        for result in results:
            if result.status is RowStatus.DONE and result.model:
                self._models[result.model] += 1
        s = self.snapshot
        self.snapshot = replace(
            s, tokens_in=s.tokens_in + sum(r.tokens_in for r in results),
            tokens_out=s.tokens_out + sum(r.tokens_out for r in results),
            cost=s.cost + sum(r.cost for r in results), cached=s.cached + sum(r.cached for r in results),
            saved=s.saved + sum(r.saved for r in results))

    def current(self, *, finished: bool = False) -> Progress:
        """The snapshot with rate, ETA and elapsed time brought up to now."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        window = min(RATE_WINDOW_S, now - self.started) or 1e-9
        rate = sum(n for _, n in self._recent) / window
        s = self.snapshot
        eta = (max(0, s.total - s.handled) / rate) if s.total is not None and rate > 0 else None
        return replace(s, rows_per_s=round(rate, 2), eta_s=round(eta, 1) if eta is not None else None,
                       elapsed_s=round(now - self.started, 3), models=dict(self._models), finished=finished,
                       steps=added_steps({}, self._steps))  # a copy: the snapshot outlives this moment
