"""Requests, results and the client protocol the engine codes against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

TOKENS_PER_CHAR = 0.25  # ~4 characters a token: the estimate limits are charged before the real usage is known
MESSAGE_OVERHEAD_TOKENS = 4  # a chat message's role and separators, beyond its text
REQUEST_OVERHEAD_TOKENS = 3


def estimate_tokens(chars: int, max_tokens: int | None = None) -> float:
    """Tokens a request may use: its text at ~4 characters a token, plus the answer it may get."""
    return chars * TOKENS_PER_CHAR + (max_tokens or 0)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: `model` is a model name, a group, or `auto`."""

    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    timeout_s: float | None = None

    def body(self, model: str | None = None) -> dict[str, Any]:
        """The OpenAI-compatible JSON body, for `model` (the deployment's own name) if given."""
        payload: dict[str, Any] = {"model": model or self.model, "messages": self.messages}
        for key in ("temperature", "max_tokens", "response_format"):
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        return payload

    def most_input_tokens(self) -> int:
        """The most input tokens this request can be billed: its text's UTF-8 bytes (no tokenizer makes more) and
        each message's role and separators (what budgets hold, live or in a batch)."""
        return REQUEST_OVERHEAD_TOKENS + sum(
            MESSAGE_OVERHEAD_TOKENS + len(m.get("content", "").encode()) for m in self.messages)

    def estimated_tokens(self) -> float:
        """Tokens this request may use, before its real usage is known."""
        return estimate_tokens(sum(len(m.get("content", "")) for m in self.messages), self.max_tokens)


@dataclass(frozen=True)
class Usage:
    """Tokens an attempt used, and what they cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached_tokens: int = 0  # of the prompt tokens, those the provider served from its prompt cache

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.cost + other.cost, self.cached_tokens + other.cached_tokens)


@dataclass(frozen=True)
class ChatResult:
    """The answer's text, which deployment gave it, what it cost, and how long it took."""

    content: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors for the inputs, in order, and which deployment made them."""

    vectors: list[list[float]]
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class ChatDelta:
    """A piece of a streamed answer; the last one carries usage (when the upstream reports it)."""

    content: str = ""
    usage: Usage | None = None
    finished: bool = False
    model: str | None = None


class ChatClient(Protocol):
    """Anything that answers chat requests: a single upstream, the mock provider, or the router."""

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer one request or raise a `GatewayError`."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Answer one request piece by piece, as the upstream sends it."""
        ...

    async def embed(self, inputs: list[str], *, model: str) -> EmbeddingResult:
        """Embedding vectors for the inputs."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
