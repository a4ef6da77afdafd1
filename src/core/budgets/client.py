"""A chat client within budgets: every request holds its maximum cost before it goes, and settles its real cost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from core.budgets.guard import BudgetGuard
from core.budgets.windows import Subject
from engine.gateway import ChatClient, ChatDelta, ChatRequest, ChatResult, EmbeddingResult


class BudgetedClient:
    """`inner`'s requests, counted toward `subjects`' budgets (a job's platform, workflow and key)."""

    def __init__(self, inner: ChatClient, guard: BudgetGuard, subjects: Sequence[Subject]) -> None:
        self.inner = inner
        self.guard = guard
        self.subjects = subjects

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer within budgets; BudgetExceeded (not sent) when one has no room."""
        hold = await self.guard.reserve(self.subjects, self.guard.max_cost(request))
        cost = 0.0
        try:
            result = await self.inner.chat(request)
            cost = result.usage.cost
            return result
        finally:
            self.guard.settle(hold, cost)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Stream within budgets; the cost is the last piece's usage."""
        hold = await self.guard.reserve(self.subjects, self.guard.max_cost(request))
        cost = 0.0
        try:
            async for piece in self.inner.stream(request):
                if piece.usage is not None:
                    cost = piece.usage.cost
                yield piece
        finally:
            self.guard.settle(hold, cost)

    async def embed(self, inputs: list[str], *, model: str) -> EmbeddingResult:
        """Embed within budgets (the inputs' bytes as tokens at the input price)."""
        request = ChatRequest(model=model, messages=[{"role": "user", "content": text} for text in inputs],
                              max_tokens=0)
        hold = await self.guard.reserve(self.subjects, self.guard.max_cost(request))
        cost = 0.0
        try:
            result = await self.inner.embed(inputs, model=model)
            cost = result.usage.cost
            return result
        finally:
            self.guard.settle(hold, cost)

    async def aclose(self) -> None:
        """Nothing of its own: the inner client and the guard are shared."""
