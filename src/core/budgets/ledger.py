"""Where budget counters live: what each window spent, and what live processes hold for requests in flight.

`apply` is the one write: settle what ended (release its holds, add its real cost), then try the new
requests in order, atomically, so no two processes can both take the last of a budget. A holder's holds
count only while the holder is alive (renewed with every call and by the guard's beat); a crashed process's
holds are void a lease after its last sign of life. The database ledger is used without Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database
from core.models import BudgetHold, BudgetSpend

SPEND = BudgetSpend.__table__  # type: ignore[attr-defined]
HOLDS = BudgetHold.__table__  # type: ignore[attr-defined]
LOCK = "#lock"  # the counter row a MariaDB ledger call locks first (no real counter starts with #)
EPSILON = 1e-9  # float sums of prices: a request that exactly fills a budget is let through


@dataclass(frozen=True)
class HoldRequest:
    """A request's maximum cost, to hold against each budgeted counter (with its limit) it counts toward."""

    amount: float
    checks: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Refusal:
    """The first counter with no room: its position in `checks`, what it has spent, and what live holders hold."""

    check: int
    spent: float
    held: float


@dataclass
class Settlement:
    """Requests that ended: holds to release and real costs to add, by counter (with each counter's keep time)."""

    released: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    keep_s: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.released or self.spent)


class Ledger(Protocol):
    """The counters' store (Redis or the database)."""

    async def apply(self, holder: str, lease_s: float, settlement: Settlement,
                    requests: list[HoldRequest]) -> list[Refusal | None]:
        """Settle, then reserve in order; for each request None (held) or why not."""
        ...

    async def figures(self, counters: list[str]) -> dict[str, tuple[float, float]]:
        """(spent, held by live holders) of each counter."""
        ...

    async def renew(self, holder: str, lease_s: float) -> None:
        """Keep `holder`'s holds alive for another lease."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def decide(requests: list[HoldRequest], totals: dict[str, float],
           spent: dict[str, float]) -> tuple[list[Refusal | None], dict[str, float]]:
    """Try each request against `totals` (spent + held by counter, updated as it goes): the outcomes, and
    the amounts newly held by counter."""
    outcomes: list[Refusal | None] = []
    held: dict[str, float] = {}
    for request in requests:
        refusal = next((Refusal(i, spent.get(c, 0.0), totals.get(c, 0.0) - spent.get(c, 0.0))
                        for i, (c, limit) in enumerate(request.checks)
                        if totals.get(c, 0.0) + request.amount > limit + EPSILON), None)
        outcomes.append(refusal)
        if refusal is None:
            for c, _ in request.checks:
                totals[c] = totals.get(c, 0.0) + request.amount
                held[c] = held.get(c, 0.0) + request.amount
    return outcomes, held


class DbLedger:
    """Counters in `budget_spend` and holds in `budget_holds`, one transaction per call.

    On MariaDB each call first locks one sentinel row (SELECT ... FOR UPDATE): row locks taken by inserts and
    updates of several counters in different orders would deadlock two callers, and a row lock, unlike a
    named lock, ends with its transaction however the call ends. On SQLite the first write takes the
    database's write lock. Either way calls of all processes are decided one after another.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._sentinel = False  # the MariaDB lock row is known to exist
        self._made: set[str] = set()  # counters whose rows exist

    async def apply(self, holder: str, lease_s: float, settlement: Settlement,
                    requests: list[HoldRequest]) -> list[Refusal | None]:
        """Settle, then reserve in order; for each request None (held) or why not."""
        now = time.time()
        checked = sorted({c for r in requests for c, _ in r.checks})
        if self.database.backend == "mysql" and not self._sentinel:
            async with self.database.engine.begin() as connection:  # apart: its own short transaction
                await connection.execute(mysql.insert(SPEND).prefix_with("IGNORE"), [{"counter": LOCK, "spent": 0}])
            self._sentinel = True
        async def transaction() -> list[Refusal | None]:
            async with self.database.engine.begin() as connection:
                if self.database.backend == "mysql":
                    await connection.execute(select(SPEND.c.counter).where(SPEND.c.counter == LOCK).with_for_update())
                return await self._apply(connection, holder, lease_s, settlement, requests, checked, now)

        outcomes = await self.database.retrying(transaction)  # a worker's rides out an outage; the API's does not
        self._made.update(checked, settlement.spent)  # committed: their rows exist
        return outcomes

    async def _apply(self, connection: AsyncConnection, holder: str, lease_s: float, settlement: Settlement,
                     requests: list[HoldRequest], checked: list[str], now: float) -> list[Refusal | None]:
        await self._ensure(connection, sorted({*checked, *settlement.spent}))
        for counter, amount in settlement.spent.items():
            await connection.execute(update(SPEND).where(SPEND.c.counter == counter)
                                     .values(spent=SPEND.c.spent + amount))
        for counter, amount in settlement.released.items():
            left = HOLDS.c.amount - amount  # a hold released whole is 0, not the sums' rounding (3e-18)
            await connection.execute(update(HOLDS).where(HOLDS.c.counter == counter, HOLDS.c.holder == holder)
                                     .values(amount=case((left < EPSILON, 0.0), else_=left)))
        await connection.execute(update(HOLDS).where(HOLDS.c.holder == holder).values(expires_at=now + lease_s))
        if not requests:
            return []
        spent, held = await self._read(connection, checked, now)
        outcomes, taken = decide(requests, {c: spent[c] + held.get(c, 0.0) for c in checked}, spent)
        if taken:
            await connection.execute(self._add_holds(), [
                {"counter": c, "holder": holder, "amount": amount, "expires_at": now + lease_s}
                for c, amount in taken.items()])
        return outcomes

    async def _ensure(self, connection: AsyncConnection, counters: list[str]) -> None:
        counters = [c for c in counters if c not in self._made]  # each once a process (MariaDB warns of each)
        if counters:
            insert = (mysql.insert(SPEND).prefix_with("IGNORE") if self.database.backend == "mysql"
                      else sqlite.insert(SPEND).on_conflict_do_nothing())
            await connection.execute(insert, [{"counter": c, "spent": 0.0} for c in counters])

    async def _read(self, connection: AsyncConnection, counters: list[str],
                    now: float) -> tuple[dict[str, float], dict[str, float]]:
        query = select(SPEND.c.counter, SPEND.c.spent).where(SPEND.c.counter.in_(counters))
        spent = {row[0]: row[1] for row in await connection.execute(query)}
        live = (select(HOLDS.c.counter, func.sum(HOLDS.c.amount))
                .where(HOLDS.c.counter.in_(counters), HOLDS.c.expires_at > now).group_by(HOLDS.c.counter))
        held = {row[0]: max(0.0, float(row[1] or 0.0)) for row in await connection.execute(live)}
        return {c: spent.get(c, 0.0) for c in counters}, held

    def _add_holds(self) -> Any:
        if self.database.backend == "mysql":
            statement = mysql.insert(HOLDS)
            return statement.on_duplicate_key_update(amount=HOLDS.c.amount + statement.inserted.amount,
                                                     expires_at=statement.inserted.expires_at)
        lite = sqlite.insert(HOLDS)
        return lite.on_conflict_do_update(index_elements=["counter", "holder"],
                                          set_={"amount": HOLDS.c.amount + lite.excluded.amount,
                                                "expires_at": lite.excluded.expires_at})

    async def figures(self, counters: list[str]) -> dict[str, tuple[float, float]]:
        """(spent, held by live holders) of each counter."""
        async with self.database.engine.connect() as connection:
            spent, held = await self._read(connection, counters, time.time())
        return {c: (spent[c], held.get(c, 0.0)) for c in counters}

    async def renew(self, holder: str, lease_s: float) -> None:
        """Keep `holder`'s holds alive for another lease; drop holds void for a day (crashed processes')."""
        now = time.time()
        async with self.database.engine.begin() as connection:
            await connection.execute(update(HOLDS).where(HOLDS.c.holder == holder).values(expires_at=now + lease_s))
            await connection.execute(delete(HOLDS).where(HOLDS.c.expires_at < now - 86_400))

    async def aclose(self) -> None:
        """Nothing of its own: the database is the caller's."""
