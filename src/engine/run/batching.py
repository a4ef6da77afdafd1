"""Items asked for one at a time, handled in groups: whatever arrives within `wait_s` (or `size` of it) at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """`submit` one item, get its result; `handle` gets lists of items and returns their results in order."""

    def __init__(self, handle: Callable[[list[In]], Awaitable[list[Out]]], *, size: int, wait_s: float) -> None:
        self.handle = handle
        self.size = size
        self.wait_s = wait_s
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        """The item's result, once its group is handled (its failure, if the group's handling fails)."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            group, self._pending = self._pending[:self.size], self._pending[self.size:]
            task = asyncio.create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, group: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self.handle([item for item, _ in group])
        except Exception as exc:  # every item of the group gets the failure
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled: the items are left to their callers' own cancellation
            for _, future in group:
                future.cancel()
            raise
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
