"""The `mock` provider: schema-valid JSON chosen deterministically from the prompt, no network."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from engine.gateway.errors import RateLimited, UpstreamUnavailable
from engine.gateway.types import ChatDelta, ChatRequest, ChatResult, EmbeddingResult, Usage

EMBED_DIMENSIONS = 256
# Left out of a mock vector (with words under 3 letters), so that texts are near by what they are about.
STOP_WORDS = frozenset(("the", "and", "for", "you", "your", "with", "are", "was", "were", "our", "this", "that",
    "from", "have", "has", "not", "but", "all", "any", "can", "its", "they", "them", "then", "than", "when",
    "what", "who", "how", "why", "where", "will", "would", "into", "been", "there", "their", "each", "every",
    "need", "needs", "same", "since", "does", "did"))
WORDS = ("amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper")


def digest(text: str) -> int:
    """A stable 64-bit hash of a text."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def answer_for(request: ChatRequest, salt: int = 0) -> dict[str, Any]:
    """The answer the mock gives: a pure function of the messages, the response schema and `salt`."""
    seed = digest(json.dumps(request.messages, ensure_ascii=False, sort_keys=True) + (f"/{salt}" if salt else ""))
    schema = ((request.response_format or {}).get("json_schema") or {}).get("schema")
    if schema is None:
        text = " ".join(m.get("content", "") for m in request.messages)
        names = re.findall(r"\"(\w+)\"", text.split("fields:", 1)[1]) if "fields:" in text else ["answer"]
        schema = {"type": "object", "properties": {name: {"type": "string"} for name in names}}
    answer: dict[str, Any] = _value(schema, "answer", seed)
    return answer


def _value(schema: dict[str, Any], name: str, seed: int) -> Any:
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    kind = schema.get("type", "string")
    if kind == "object":
        return {key: _value(sub, key, seed ^ digest(key)) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "integer":
        return seed % 100
    if kind == "number":
        return round((seed % 10_000) / 100, 2)
    if kind == "boolean":
        return bool(seed & 1)
    if kind == "array":
        return [_value(schema.get("items") or {}, name, seed >> i) for i in range(1 + seed % 3)]
    return f"{name}-{WORDS[seed % len(WORDS)]}-{seed % 100_000}"


def mock_answer(request: ChatRequest, *, seed: int, name: str) -> ChatResult:
    """The mock's answer to a request (live or in a batch): its content and usage, ~4 characters a token."""
    content = json.dumps(answer_for(request, seed), ensure_ascii=False)
    prompt_chars = sum(len(m.get("content", "")) for m in request.messages)
    return ChatResult(content=content, model=name, usage=Usage(max(1, prompt_chars // 4), max(1, len(content) // 4)))


def mock_vector(text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A bag of the text's words hashed into EMBED_DIMENSIONS, normalized: texts sharing words are near, so
    retrieval over mock vectors finds rows about the same things. A text without words gets a random unit vector
    drawn from its hash."""
    vector = [0.0] * dimensions
    words = [w.removesuffix("s") for w in re.findall(r"\w{3,}", text.lower()) if w not in STOP_WORDS]
    for word in words:
        hashed = digest(word)
        vector[hashed % dimensions] += 1.0 if hashed >> 63 else -1.0
    if not any(vector):
        rng = random.Random(digest(text))
        vector = [rng.uniform(-1, 1) for _ in range(dimensions)]
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector]


def mock_embedding(inputs: list[str], *, name: str, dimensions: int = EMBED_DIMENSIONS) -> EmbeddingResult:
    """The mock's embeddings of `inputs` (live or in a batch): their vectors and usage, ~4 characters a token."""
    vectors = [mock_vector(text, dimensions) for text in inputs]
    return EmbeddingResult(vectors, name, Usage(sum(max(1, len(t) // 4) for t in inputs), 0))


class MockClient:
    """Answers every request locally after `latency_s`; faults at the given rates, drawn by prompt hash."""

    def __init__(self, *, latency_s: float = 0.0, rate_429: float = 0.0, rate_500: float = 0.0,
                 name: str = "mock", seed: int = 0, dimensions: int = EMBED_DIMENSIONS) -> None:
        self.latency_s = latency_s
        self.dimensions = dimensions
        self.seed = seed
        self.rate_429 = rate_429
        self.rate_500 = rate_500
        self.name = name
        self._attempts: dict[int, int] = {}

    async def chat(self, request: ChatRequest) -> ChatResult:
        """A deterministic, schema-valid answer (or an injected fault on a prompt's first attempt)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        key = digest(json.dumps(request.messages, sort_keys=True))
        if self.rate_429 or self.rate_500:
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            draw = random.Random(key).random()
            if attempt == 1 and draw < self.rate_429:
                raise RateLimited(f"{self.name}: injected 429", status=429, model=self.name, retry_after_s=0)
            if attempt == 1 and draw < self.rate_429 + self.rate_500:
                raise UpstreamUnavailable(f"{self.name}: injected 500", status=500, model=self.name)
        return replace(mock_answer(request, seed=self.seed, name=self.name), latency_s=self.latency_s)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The same answer as `chat`, in four pieces, usage on the last."""
        result = await self.chat(request)
        step = max(1, len(result.content) // 4)
        for start in range(0, len(result.content), step):
            yield ChatDelta(content=result.content[start:start + step], model=self.name)
        yield ChatDelta(usage=result.usage, finished=True, model=self.name)

    async def embed(self, inputs: list[str], *, model: str) -> EmbeddingResult:
        """Unit vectors of `dimensions` numbers, a pure function of each input (see `mock_vector`)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return mock_embedding(inputs, name=self.name, dimensions=self.dimensions)

    async def aclose(self) -> None:
        """Nothing to release."""
