"""The budget guard: a request's maximum cost is held against every budget it counts toward before it is sent,
and its real cost settled after; one per process, shared by its jobs (and the API's /v1 routes).

Hold requests and settlements are gathered and sent to the ledger together (one call for all the rows that ask
in one turn of the event loop), so a budget costs a worker a fraction of a round trip a row. A request refused
only because of what requests in flight hold waits for them to settle; one refused by what is already spent
raises `BudgetExceeded`, and the job pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlmodel import select

from core.background import cancel_and_wait
from core.budgets.ledger import EPSILON, HoldRequest, Ledger, Refusal, Settlement
from core.budgets.windows import Subject, Window, counter, keep_s, window
from core.db import Database
from core.db.types import utcnow
from core.models import Budget, BudgetPeriod, BudgetScope
from core.outages import quiet_outage
from engine.gateway import BudgetExceeded, ChatRequest, GatewayConfig

log = logging.getLogger(__name__)

SETTLE_EVERY_S = 0.1  # settlements with no request waiting are sent this often
HOLD_RECHECK_S = 0.25  # a request waiting for others' holds asks again this often
RELOAD_EVERY_S = 2.0  # budgets set through the API reach every process within this
LEDGER_TRIES = 5  # failed ledger calls in a row before the requests waiting on them fail
BLOCK_REQUESTS = 64  # a process holds credit for this many requests at once: most requests need no ledger call


@dataclass(frozen=True)
class Hold:
    """What a request holds: its counters (every subject and period, for its spend) and the budgeted ones."""

    counters: tuple[tuple[str, int], ...]
    held: tuple[str, ...]
    amount: float


@dataclass(frozen=True)
class BudgetFigures:
    """A budget in its current window."""

    budget: Budget
    window: Window
    spent: float
    held: float


def describe(budget: Budget) -> str:
    """A budget as a person names it: "the daily budget of workflow 'triage'"."""
    period = {"total": "total", "day": "daily", "hour": "hourly"}[budget.period]
    whose = {"platform": "the platform", "workflow": f"workflow {budget.target!r}",
             "key": f"API key {budget.target}"}[budget.scope]
    return f"the {period} budget of {whose}"


def exceeded(budget: Budget, current: Window, *, spent: float, held: float, needed: float) -> BudgetExceeded:
    """The error that says which budget, what is spent of it, and when it resets."""
    resets = current.end
    when = f"it resets at {resets.isoformat()}" if resets else "a total budget does not reset"
    message = (f"{describe(budget)} has no room: {spent:.6g} spent and {held:.6g} held of {budget.limit_usd:.6g} "
               f"(this request needs up to {needed:.6g}); {when}, or raise it")
    details: dict[str, object] = {
        "budget_id": budget.id, "scope": str(budget.scope), "target": budget.target or None,
        "period": str(budget.period), "window": current.name, "limit_usd": budget.limit_usd,
        "spent_usd": round(spent, 10), "held_usd": round(held, 10), "needed_usd": round(needed, 10),
        "resets_at": resets.isoformat() if resets else None}
    wait = (resets - utcnow()).total_seconds() if resets else None
    return BudgetExceeded(message, details=details, retry_after_s=wait)


class BudgetGuard:
    """Holds requests' maximum costs against the budgets in force, and settles what they really cost."""

    def __init__(self, database: Database, ledger: Ledger, *, holder: str, lease_s: float, zone: tzinfo,
                 gateway: GatewayConfig, default_output_tokens: int) -> None:
        self.database = database
        self.ledger = ledger
        self.holder = f"{holder}/{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.zone = zone
        self.gateway = gateway
        self.default_output_tokens = default_output_tokens
        self._budgets: dict[Subject, list[Budget]] = {}
        self._prices: dict[str, tuple[float, float]] = {}
        self._asks: list[tuple[HoldRequest, asyncio.Future[Refusal | None]]] = []
        self._settlement = Settlement()
        self._wake = asyncio.Event()
        self._asked = asyncio.Event()
        self._released = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Future[None] | None = None
        self._failures = 0
        self._current: tuple[datetime, datetime, dict[BudgetPeriod, Window]] | None = None
        self._counters: dict[tuple[Subject, ...], tuple[tuple[str, int], ...]] = {}
        # Held in the ledger but not by a request: what the next requests of a set of budgets take from.
        self._credit: dict[tuple[str, ...], float] = {}
        self._last_use: dict[tuple[str, ...], float] = {}
        self._topping: dict[tuple[str, ...], asyncio.Lock] = {}

    async def start(self) -> None:
        """Load the budgets and start sending to the ledger (done on first use if not before; every caller
        waits until the budgets are loaded, so no request goes unchecked)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._begin())
        await asyncio.shield(self._started)

    async def _begin(self) -> None:
        await self.reload()
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._beat())]

    async def reload(self) -> None:
        """Read the budgets in force (the API calls this after a change; every process does every few seconds)."""
        async with self.database.session() as session:
            budgets = list((await session.exec(select(Budget))).all())
        by_subject: dict[Subject, list[Budget]] = {}
        for budget in budgets:
            # As enums: a subject's hash is its scope's (the text read back would hash apart).
            budget.scope, budget.period = BudgetScope(budget.scope), BudgetPeriod(budget.period)
            by_subject.setdefault(Subject(budget.scope, budget.target), []).append(budget)
        self._budgets = by_subject

    def max_cost(self, request: ChatRequest) -> float:
        """The most `request` can cost on any deployment it may go to: its text's UTF-8 bytes as tokens (no
        tokenizer makes more) and `max_tokens` (else BUDGET_OUTPUT_TOKENS) of answer, at the highest prices."""
        prices = self._prices.get(request.model)
        if prices is None:
            members = self.gateway.members(request.model) or self.gateway.models
            prices = self._prices[request.model] = (max(d.price.input for d in members),
                                                    max(d.price.output for d in members))
        tokens_in = request.most_input_tokens()
        tokens_out = self.default_output_tokens if request.max_tokens is None else request.max_tokens
        return (tokens_in * prices[0] + tokens_out * prices[1]) / 1e6

    async def reserve(self, subjects: Sequence[Subject], amount: float) -> Hold:
        """Hold `amount` against every budget of `subjects`; BudgetExceeded when one has no room left."""
        await self.start()
        windows = self._windows()
        counters = self._counters.get(tuple(subjects))
        if counters is None:
            counters = self._counters[tuple(subjects)] = tuple(
                (counter(s, windows[p]), keep_s(p)) for s in subjects for p in BudgetPeriod)
        rules = [(b, counter(s, windows[b.period])) for s in subjects for b in self._budgets.get(s, ())]
        if not rules or amount <= 0:
            return Hold(counters, (), 0.0)
        held = tuple(c for _, c in rules)
        self._last_use[held] = time.monotonic()
        if self._credit.get(held, 0.0) + EPSILON < amount:
            async with self._topping.setdefault(held, asyncio.Lock()):  # one top-up at a time per set of budgets
                await self._top_up(held, tuple((c, b.limit_usd) for b, c in rules), amount, rules, windows)
        self._credit[held] -= amount
        return Hold(counters, held, amount)

    async def _top_up(self, held: tuple[str, ...], checks: tuple[tuple[str, float], ...], amount: float,
                      rules: list[tuple[Budget, str]], windows: dict[BudgetPeriod, Window]) -> None:
        """Make this process's credit for `held` cover `amount`: a block for BLOCK_REQUESTS such requests if the
        budgets have room for it, else just what is short; BudgetExceeded when what is spent leaves no room."""
        while (short := amount - self._credit.get(held, 0.0)) > EPSILON:
            released = self._released
            for want in (short + amount * (BLOCK_REQUESTS - 1), short):
                refusal = await self._ask(HoldRequest(want, checks))
                if refusal is None:
                    self._credit[held] = self._credit.get(held, 0.0) + want
                    break
            if refusal is None:
                continue
            budget, _ = rules[refusal.check]
            self._give_back(held)  # idle credit of ours must not keep this or another process waiting
            if refusal.spent + amount > budget.limit_usd + EPSILON:  # spent alone leaves no room: nothing to wait for
                raise exceeded(budget, windows[budget.period], spent=refusal.spent, held=refusal.held,
                               needed=amount)
            with contextlib.suppress(TimeoutError):  # held by requests in flight: wait until some settle
                await asyncio.wait_for(released.wait(), HOLD_RECHECK_S)

    async def _ask(self, request: HoldRequest) -> Refusal | None:
        future: asyncio.Future[Refusal | None] = asyncio.get_running_loop().create_future()
        self._asks.append((request, future))
        self._wake.set()
        self._asked.set()
        return await future

    def _give_back(self, held: tuple[str, ...]) -> None:
        """Release this process's unused credit for `held` (sent with the next call)."""
        credit = self._credit.pop(held, 0.0)
        if credit > 0:
            for name in held:
                self._settlement.released[name] = self._settlement.released.get(name, 0.0) + credit
            self._wake.set()

    def _windows(self) -> dict[BudgetPeriod, Window]:
        """The current window of each period (worked out again only when the hour changes)."""
        now = utcnow()
        if self._current is None or not self._current[0] <= now < self._current[1]:
            windows = {period: window(period, now, self.zone) for period in BudgetPeriod}
            hour = windows[BudgetPeriod.HOUR]
            assert hour.start is not None and hour.end is not None
            self._current = (hour.start, hour.end, windows)
            self._counters = {}
        return self._current[2]

    def settle(self, hold: Hold, cost: float) -> None:
        """The request ended having cost `cost`: the part of its hold it spent is released in the ledger as its
        cost is added (sent shortly); the rest goes back to this process's credit."""
        settlement = self._settlement
        if hold.held:
            used = min(cost, hold.amount)
            for name in hold.held:
                settlement.released[name] = settlement.released.get(name, 0.0) + used
            self._credit[hold.held] = self._credit.get(hold.held, 0.0) + hold.amount - used
        if cost:
            for name, keep in hold.counters:
                settlement.spent[name] = settlement.spent.get(name, 0.0) + cost
                settlement.keep_s[name] = keep
        if settlement:
            self._wake.set()

    async def figures(self, budgets: Iterable[Budget]) -> list[BudgetFigures]:
        """Each budget's spent and held amounts in its current window (what requests are decided on)."""
        await self.start()
        windows = self._windows()
        current = [(b, windows[BudgetPeriod(b.period)]) for b in budgets]
        names = [counter(Subject(BudgetScope(b.scope), b.target), w) for b, w in current]
        found = await self.ledger.figures(sorted(set(names)))
        return [BudgetFigures(b, w, *found[name]) for (b, w), name in zip(current, names, strict=True)]

    async def exhausted(self, subjects: Sequence[Subject], *,
                        needed: Mapping[tuple[int | None, str], float] | None = None) -> BudgetExceeded | None:
        """The first budget of `subjects` with nothing left in its window, or less than `needed` (by budget id
        and window: what a request it already refused needed); a new job is refused then."""
        await self.start()
        budgets = [b for s in subjects for b in self._budgets.get(s, ())]
        for figures in await self.figures(budgets):
            want = (needed or {}).get((figures.budget.id, figures.window.name), 0.0)
            left = figures.budget.limit_usd - figures.spent - figures.held
            if left <= 0 or left < want:
                return exceeded(figures.budget, figures.window, spent=figures.spent, held=figures.held, needed=want)
        return None

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            if not self._asks:  # only settlements: let them gather a while (a request cuts it short)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._asked.wait(), SETTLE_EVERY_S)
            self._wake.clear()
            self._asked.clear()
            await self._send_once()

    async def _send_once(self) -> None:
        settlement, self._settlement = self._settlement, Settlement()
        asks, self._asks = self._asks, []
        try:
            outcomes = await self.ledger.apply(self.holder, self.lease_s, settlement, [r for r, _ in asks])
        except Exception as exc:
            self._failures += 1
            log.warning("budget ledger call failed (%s in a row): %s", self._failures, exc)
            self._merge(settlement)  # sent again with the next call
            if self._failures < LEDGER_TRIES:
                self._asks = asks + self._asks  # asked again with the next call
            else:  # the ledger is down: the requests fail (a job's rows by its retry limits)
                for _, future in asks:
                    if not future.done():
                        future.set_exception(exc)
            await asyncio.sleep(HOLD_RECHECK_S)
            return
        self._failures = 0
        for (_, future), outcome in zip(asks, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        if settlement.released:
            self._released.set()
            self._released = asyncio.Event()

    def _merge(self, earlier: Settlement) -> None:
        for name, amount in earlier.released.items():
            self._settlement.released[name] = self._settlement.released.get(name, 0.0) + amount
        for name, amount in earlier.spent.items():
            self._settlement.spent[name] = self._settlement.spent.get(name, 0.0) + amount
        self._settlement.keep_s |= earlier.keep_s
        self._wake.set()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(min(RELOAD_EVERY_S, self.lease_s / 3))
            idle = time.monotonic() - RELOAD_EVERY_S
            for held in [h for h, used in self._last_use.items() if used < idle]:
                del self._last_use[held]
                self._give_back(held)  # the figures show it free, and other processes can take it
            try:
                with quiet_outage():  # an outage is logged once for the process; the lease outlasts a few beats
                    await self.ledger.renew(self.holder, self.lease_s)
                    await self.reload()
            except Exception as exc:
                log.warning("budget beat failed: %s", exc)

    async def aclose(self) -> None:
        """Send what is settled, stop, and close the ledger."""
        await cancel_and_wait(self._tasks)
        self._tasks, self._started = [], None
        for held in list(self._credit):
            self._give_back(held)
        if self._settlement or self._asks:
            with contextlib.suppress(Exception):
                await self._send_once()
        await self.ledger.aclose()
