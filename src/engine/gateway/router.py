"""The router: picks a deployment by weight among the healthy ones with capacity, and fails over.

A request for `auto`, a group, or a model name waits for capacity rather than failing; a retryable
failure moves it to the next candidate; a 4xx caused by the request is returned at once. When every
candidate is cooling down or full until the request's deadline, it fails with RateLimited and the
seconds until the first comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from engine.gateway.capacity import SharedCapacity
from engine.gateway.config import Deployment, GatewayConfig, resolve_secrets
from engine.gateway.errors import GatewayError, RateLimited, RequestRejected, UpstreamError
from engine.gateway.limits import REQUEST_WINDOW_S, TOKEN_WINDOW_S, Cooldown, SlidingWindow, WindowEntry
from engine.gateway.providers import PROVIDERS, ClientFactory, UpstreamConnections
from engine.gateway.types import ChatClient, ChatDelta, ChatRequest, ChatResult, EmbeddingResult, Usage

T = TypeVar("T")
DEFAULT_WAIT_S = 60.0
LATENCY_SAMPLES = 512
SHARED_COOLDOWN_POLL_S = 0.25  # how stale another process's cool-down may be, for deployments without limits
# A full shared token window is asked again this often: other processes' settled usage (real tokens below
# their estimates) can make room before its oldest send leaves.
SHARED_TOKENS_RECHECK_S = 0.25


@dataclass(slots=True)
class TokenHold:
    """What a request took from its deployment's token window, settled once its real usage is known."""

    estimate: float
    entry: WindowEntry | None = None  # in this process's window
    ticket: str | None = None  # in the shared window


@dataclass
class DeploymentState:
    """A deployment with its client, limits, health and counters."""

    config: Deployment
    client: ChatClient
    requests: SlidingWindow | None
    tokens: SlidingWindow | None
    cooldown: Cooldown = field(default_factory=Cooldown)
    not_before: float = -math.inf  # with shared limits: Redis said to wait until then
    shared_checked_at: float = -math.inf  # last look at the shared cool-down (deployments without limits)
    in_flight: int = 0
    ok: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def wait_s(self, tokens: float, now: float) -> float:
        """Seconds until this deployment can take a request of `tokens` (0: now)."""
        if self.config.max_in_flight is not None and self.in_flight >= self.config.max_in_flight:
            return float("inf")  # until a request finishes
        waits = [max(0.0, self.cooldown.until - now, self.not_before - now)]
        if self.requests is not None:
            waits.append(self.requests.wait_s(1, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait_s(tokens, now))
        return max(waits)


class Router:
    """A ChatClient over many deployments (see the module docstring)."""

    def __init__(self, config: GatewayConfig, *, env: dict[str, str] | None = None,
                 shared: SharedCapacity | None = None, clock: Callable[[], float] = time.monotonic,
                 seed: int | None = None, trace_upstream: bool = False,
                 providers: Mapping[str, ClientFactory] = PROVIDERS) -> None:
        self.config = config
        self.shared = shared  # with it, requests/s, tokens/min and cool-downs are fleet-wide
        self.clock = clock
        self._random = random.Random(seed)
        self._changed = asyncio.Event()
        self._waiting = 0  # requests waiting for capacity: only they need a release to wake them
        self._tickets = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())  # names sends in shared windows
        # A client span (and traceparent header) per upstream call when traced.
        self.connections = UpstreamConnections(traced=trace_upstream)
        keys = resolve_secrets(config, env)
        self.deployments = {d.name: self._state(d, providers[d.provider], keys[d.name]) for d in config.models}
        self._counts_tokens = any(d.tpm for d in config.models)  # else no request needs its token estimate

    def _state(self, deployment: Deployment, factory: ClientFactory, api_key: str | None) -> DeploymentState:
        client = factory(deployment, config=self.config, api_key=api_key, connections=self.connections)
        local = self.shared is None  # with shared limits the windows live in Redis
        requests = SlidingWindow(deployment.safe_rps, REQUEST_WINDOW_S) if deployment.safe_rps and local else None
        tokens = SlidingWindow(deployment.tpm, TOKEN_WINDOW_S) if deployment.tpm and local else None
        return DeploymentState(deployment, client, requests, tokens)

    def candidates(self, name: str) -> list[DeploymentState]:
        """The deployments a request for `name` (a model, a group, or auto) may use."""
        members = self.config.members(name)
        if members:
            return [self.deployments[d.name] for d in members]
        raise RequestRejected(f"unknown model {name!r}; known: auto, "
                              f"{', '.join([*self.config.groups, *self.deployments])}", status=404)

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer through the best available deployment, failing over on retryable errors."""
        async def attempt(state: DeploymentState, taken: TokenHold, adapted: ChatRequest) -> ChatResult:
            result = await state.client.chat(adapted)
            cost = await self._succeeded(state, result.usage, result.latency_s, taken)
            usage = result.usage  # built directly: dataclasses.replace costs more than the routing around it
            return ChatResult(result.content, state.config.name,
                              Usage(usage.prompt_tokens, usage.completion_tokens, cost, usage.cached_tokens),
                              result.latency_s)

        return await self._routed(request, attempt)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Stream through the best available deployment; failover happens only before the first piece."""
        started = self.clock()

        async def attempt(state: DeploymentState, taken: TokenHold, adapted: ChatRequest
                          ) -> tuple[DeploymentState, TokenHold, float, AsyncIterator[ChatDelta], ChatDelta]:
            sent_at = self.clock()  # after any wait for capacity: what a later failure is counted against
            pieces = state.client.stream(adapted)
            return state, taken, sent_at, pieces, await anext(pieces)  # failures up to here fail over

        state, taken, sent_at, pieces, first = await self._routed(request, attempt)
        self._hold(state)  # the stream is in flight until its last piece
        try:
            yield replace(first, model=state.config.name)
            reported = first.usage is not None
            async for piece in pieces:
                if piece.usage is not None:
                    cost = await self._succeeded(state, piece.usage, self.clock() - started, taken)
                    piece = replace(piece, usage=replace(piece.usage, cost=cost))
                    reported = True
                yield replace(piece, model=state.config.name)
            if not reported:
                await self._succeeded(state, Usage(), self.clock() - started, taken)
        except UpstreamError as exc:
            await self._failed(state, exc, sent_at)
            raise
        finally:
            self._release(state)

    async def embed(self, inputs: list[str], *, model: str) -> EmbeddingResult:
        """Embeddings through the best available deployment (same routing, limits and failover)."""
        probe = ChatRequest(model=model, messages=[{"role": "user", "content": "".join(inputs)}])

        async def attempt(state: DeploymentState, taken: TokenHold, _: ChatRequest) -> EmbeddingResult:
            started = self.clock()
            result = await state.client.embed(inputs, model=state.config.model)
            cost = await self._succeeded(state, result.usage, self.clock() - started, taken)
            return replace(result, model=state.config.name, usage=replace(result.usage, cost=cost))

        return await self._routed(probe, attempt)

    async def _routed(self, request: ChatRequest,
                      attempt: Callable[[DeploymentState, TokenHold, ChatRequest], Awaitable[T]]) -> T:
        """Run `attempt` on a deployment with capacity; retryable failures move it to the next candidate."""
        pool = self.candidates(request.model)
        deadline = self.clock() + (request.timeout_s or DEFAULT_WAIT_S)
        estimate = request.estimated_tokens() if self._counts_tokens else 0.0
        tried: set[str] = set()
        last_error: GatewayError | None = None
        while True:
            untried = [d for d in pool if d.config.name not in tried and d.config.weight > 0]
            if not untried:
                assert last_error is not None
                raise last_error
            state, wait = self._pick(untried, estimate)
            if state is None:
                remaining = deadline - self.clock()
                if remaining <= 0 or (math.isfinite(wait) and wait > remaining):
                    raise RateLimited(f"{request.model}: every deployment is cooling down or at its limit",
                                      status=429, retry_after_s=round(wait, 3) if math.isfinite(wait) else 1.0)
                await self._wait_for_change(min(wait, remaining))
                continue
            taken = TokenHold(estimate)
            if self.shared is not None and self._ask_shared(state):
                config = state.config
                taken.ticket = next(self._tickets)
                shared_wait = await self.shared.take(config.name, rps=config.safe_rps, tpm=config.tpm,
                                                     tokens=estimate, ticket=taken.ticket)
                if shared_wait > 0:  # another process used the capacity, or the deployment cools down
                    if config.tpm:
                        shared_wait = min(shared_wait, SHARED_TOKENS_RECHECK_S)
                    state.not_before = self.clock() + shared_wait
                    continue
            self._take(state, taken)
            sent_at = self.clock()
            try:
                return await attempt(state, taken, adapt_request(state.config, request))
            except RequestRejected:
                state.failed += 1
                raise
            except UpstreamError as exc:
                await self._failed(state, exc, sent_at)
                tried.add(state.config.name)
                last_error = exc
            finally:
                self._release(state)

    def _ask_shared(self, state: DeploymentState) -> bool:
        """Whether this request must go through Redis: always with shared windows; without them only to see
        another process's cool-down, which a look every SHARED_COOLDOWN_POLL_S catches (not a round trip
        a request)."""
        if state.config.safe_rps or state.config.tpm:
            return True
        now = self.clock()
        if now - state.shared_checked_at < SHARED_COOLDOWN_POLL_S:
            return False
        state.shared_checked_at = now
        return True

    def _pick(self, pool: list[DeploymentState], estimate: float) -> tuple[DeploymentState | None, float]:
        """A deployment with capacity now, chosen by weight; else None and the seconds to wait."""
        now = self.clock()
        waits = [(d, d.wait_s(estimate, now)) for d in pool]
        ready = [d for d, wait in waits if wait == 0.0]
        if not ready:
            return None, min(wait for _, wait in waits)
        if len(ready) == 1:
            return ready[0], 0.0
        return self._random.choices(ready, weights=[d.config.weight for d in ready])[0], 0.0

    async def _wait_for_change(self, seconds: float) -> None:
        """Until capacity may have changed (a request finished) or `seconds` pass."""
        changed = self._changed  # every waiter holds the event of its generation: no wake-up is lost
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=max(0.001, seconds))
        finally:
            self._waiting -= 1

    def _notify(self) -> None:
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()

    def _take(self, state: DeploymentState, taken: TokenHold) -> None:
        now = self.clock()
        if state.requests is not None:
            state.requests.take(1, now)
        if state.tokens is not None:
            taken.entry = state.tokens.take(taken.estimate, now)
        self._hold(state)

    @staticmethod
    def _hold(state: DeploymentState) -> None:
        state.in_flight += 1

    def _release(self, state: DeploymentState) -> None:
        state.in_flight -= 1
        self._notify()

    async def _failed(self, state: DeploymentState, error: UpstreamError, sent_at: float) -> None:
        state.failed += 1
        now = self.clock()
        deadline = state.cooldown.failed(now, error.retry_after_s, sent_at=sent_at)
        if self.shared is not None and deadline > now:
            await self.shared.cool_down(state.config.name, deadline - now)

    async def _succeeded(self, state: DeploymentState, usage: Usage, latency_s: float, taken: TokenHold) -> float:
        """Count a success, settle the token estimate, end any back-off; returns the cost."""
        used = usage.prompt_tokens + usage.completion_tokens
        if used and state.tokens is not None and taken.entry is not None:
            state.tokens.settle(taken.entry, used)  # the window now holds what the request really used
        elif used and self.shared is not None and state.config.tpm and taken.ticket is not None:
            await self.shared.settle_tokens(state.config.name, ticket=taken.ticket, tokens=used)
        cost = state.config.price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        state.cooldown.succeeded()
        state.ok += 1
        state.tokens_in += usage.prompt_tokens
        state.tokens_out += usage.completion_tokens
        state.cost += cost
        state.latencies.append(latency_s)
        return cost

    async def aclose(self) -> None:
        """Close every client and shared connection pool."""
        for state in self.deployments.values():
            await state.client.aclose()
        await self.connections.aclose()
        if self.shared is not None:
            await self.shared.aclose()


def adapt_request(config: Deployment, request: ChatRequest) -> ChatRequest:
    """Drop what the deployment does not support; fill its default temperature."""
    changes: dict[str, Any] = {}
    if not config.supports_json_schema and request.response_format is not None:
        changes["response_format"] = None
    if not config.supports_advanced_params:
        changes["temperature"] = None
    elif request.temperature is None and config.temperature is not None:
        changes["temperature"] = config.temperature
    return replace(request, **changes) if changes else request


def usage_total(router: Router) -> Usage:
    """Tokens and cost over every deployment so far."""
    states = router.deployments.values()
    return Usage(sum(s.tokens_in for s in states), sum(s.tokens_out for s in states), sum(s.cost for s in states))
