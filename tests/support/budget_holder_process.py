"""A process that holds part of a budget and then waits to be killed (the crashed worker of the budget tests).

    python -m tests.support.budget_holder_process LEDGER COUNTER LIMIT AMOUNT LEASE_S

LEDGER is a Redis URL with a prefix (`redis://...#prefix`) or a database URL. It prints `held` once its
reservation is in the ledger, renews it as a live worker does, and never settles it.
"""

from __future__ import annotations

import asyncio
import sys

from core.budgets.ledger import DbLedger, HoldRequest, Ledger, Settlement
from core.budgets.redis_ledger import RedisLedger
from core.db import Database


async def main(where: str, counter: str, limit: float, amount: float, lease_s: float) -> None:
    ledger: Ledger
    if where.startswith("redis"):
        url, _, prefix = where.partition("#")
        ledger = RedisLedger.from_url(url, prefix=prefix)
    else:
        ledger = DbLedger(Database(where))
    outcome = await ledger.apply("doomed", lease_s, Settlement(), [HoldRequest(amount, ((counter, limit),))])
    assert outcome == [None], outcome
    print("held", flush=True)
    while True:  # alive until killed
        await ledger.renew("doomed", lease_s)
        await asyncio.sleep(lease_s / 4)


if __name__ == "__main__":
    where, counter, limit, amount, lease = sys.argv[1:6]
    asyncio.run(main(where, counter, float(limit), float(amount), float(lease)))
