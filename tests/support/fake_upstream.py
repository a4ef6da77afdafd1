"""The project's own fake OpenAI-compatible upstream for tests: real HTTP on 127.0.0.1, faults on demand.

Answers are deterministic: enum fields pick by a hash of the row's prompt (the first user message), string
fields are `<field>:<hash>` so a test can check that each answer landed on the row it was asked for.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_batches import FakeBatches

Fault = str  # "429", "500", "400", "malformed", "hang", "bad-enum"
FaultPolicy = Callable[[str, int, dict[str, Any]], Fault | None]  # (row prompt, attempt of it, body)


def busiest_second(arrivals: list[float]) -> int:
    """The most requests any closed 1 s window of these arrival times holds."""
    ordered = sorted(arrivals)
    return max((bisect.bisect_right(ordered, first + 1.0) - i for i, first in enumerate(ordered)), default=0)


def marker(prompt: str) -> str:
    """The hash string answers carry for a row prompt."""
    return hashlib.sha1(prompt.encode()).hexdigest()[:12]


def fake_vector(text: str) -> list[float]:
    """The embedding the fake upstream gives a text: four numbers in [0, 1] from its hash."""
    return [int(marker(text)[j:j + 2], 16) / 255 for j in range(0, 8, 2)]


def row_prompt(body: dict[str, Any]) -> str:
    """The first user message: the row's rendered prompt, the same on every attempt."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def first_attempts(rates: dict[Fault, float], *, attempts: int = 1) -> FaultPolicy:
    """Faults drawn by prompt hash, hitting only the first `attempts` attempts of each prompt."""
    def policy(prompt: str, attempt: int, _: dict[str, Any]) -> Fault | None:
        if attempt > attempts:
            return None
        draw = random.Random(f"{prompt}/{attempt}").random()
        edge = 0.0
        for fault, rate in rates.items():
            edge += rate
            if draw < edge:
                return fault
        return None
    return policy


@dataclass(frozen=True)
class Streamed:
    """A 200 answer to be sent as an event stream."""

    content: str
    model: str
    usage: dict[str, int]


@dataclass
class UpstreamStats:
    """What the upstream saw."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)  # by row prompt
    asked: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (row prompt, model)
    embedded: Counter[str] = field(default_factory=Counter)  # texts embedded, by text
    embed_requests: int = 0
    ok: Counter[str] = field(default_factory=Counter)  # answered 200 with valid content, by row prompt
    models: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    idle_arrivals: int = 0  # chat requests that found no other request in flight
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each chat request


class FakeUpstream:
    """`async with FakeUpstream(...) as up:` serves `up.base_url` until the block ends."""

    def __init__(self, *, latency_s: float = 0.0, faults: FaultPolicy | None = None, keep_bodies: bool = False,
                 hang_s: float = 30.0, retry_after: str = "0", stream_gap_s: float = 0.0,
                 latency_spread: float = 0.0,
                 count_usage: Callable[[dict[str, Any], str], dict[str, int]] | None = None,
                 model_answers: bool = False, reply: Callable[[dict[str, Any]], str] | None = None,
                 embed_faults: FaultPolicy | None = None) -> None:
        self.latency_s = latency_s
        self.latency_spread = latency_spread  # each prompt waits latency_s * (1 + spread * u), u in [0, 1) by hash
        self.faults = faults
        self.embed_faults = embed_faults  # as `faults`, for embeddings requests, by their first text
        self.keep_bodies = keep_bodies
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.stream_gap_s = stream_gap_s
        self.count_usage = count_usage  # (request body, answer) -> usage; default: ~4 characters a token
        self.model_answers = model_answers  # answers differ by model (a fan-out's columns can be told apart)
        self.reply = reply  # (request body) -> the content of a 200 answer, instead of a valid answer
        self.stats = UpstreamStats()
        self.batches = FakeBatches(self)  # OpenAI's Files and Batches endpoints, answered by this upstream
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.base_url = ""

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if "/files" in path or "/batches" in path:
                    status, payload, extra = await self.batches.route(method, path, body, headers)
                else:
                    status, payload, extra = await self._route(method, path, body)
                if isinstance(payload, Streamed):
                    await self._stream(writer, payload)
                    continue
                kind = "application/jsonl" if isinstance(payload, bytes) else "application/json"
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                extra_headers = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n"
                             f"{extra_headers}\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def answer_line(self, body: dict[str, Any], url: str = "/v1/chat/completions") -> tuple[int, dict[str, Any]]:
        """A batch line answered as a live request with this body to `url` would be (its faults and counts
        included), at once: the HTTP status and the body."""
        status, payload, _ = await self._route("POST", url, json.dumps(body).encode(), wait=False)
        return status, payload

    async def _route(self, method: str, path: str, raw: bytes, *, wait: bool = True) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path.endswith("/embeddings"):
            request = json.loads(raw)
            inputs = [request["input"]] if isinstance(request["input"], str) else request["input"]
            self.stats.requests += 1
            self.stats.embed_requests += 1
            self.stats.embedded.update(inputs)
            fault = self.embed_faults(inputs[0], self.stats.embedded[inputs[0]], request) if self.embed_faults else None
            if fault in ("429", "500", "400"):
                return int(fault), {"error": {"message": f"injected {fault}"}}, {}
            await asyncio.sleep(self.latency_s)
            return 200, {"object": "list", "model": request.get("model"), "usage": {"prompt_tokens": len(inputs)},
                         "data": [{"object": "embedding", "index": i, "embedding": fake_vector(text)}
                                  for i, text in enumerate(inputs)]}, {}
        if not (method == "POST" and path.endswith("/chat/completions")):
            return 404, {"error": {"message": f"no route {method} {path}"}}, {}
        stats = self.stats
        stats.requests += 1
        stats.arrivals.append(time.monotonic())
        body = json.loads(raw)
        if self.keep_bodies:
            stats.bodies.append(body)
        prompt = row_prompt(body)
        stats.attempts[prompt] += 1
        stats.asked[(prompt, body.get("model", ""))] += 1
        stats.models[body.get("model", "")] += 1
        fault = self.faults(prompt, stats.attempts[prompt], body) if self.faults else None
        stats.idle_arrivals += stats.in_flight == 0
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            if wait:
                await asyncio.sleep(self.hang_s if fault == "hang" else self._latency(prompt))
        finally:
            stats.in_flight -= 1
        if fault in ("429", "500", "400"):
            status = int(fault)
            stats.by_status[status] += 1
            headers = {"Retry-After": self.retry_after} if status == 429 else {}
            return status, {"error": {"message": f"injected {fault}"}}, headers
        answer = self.answer(body, f"{body.get('model')}|{prompt}" if self.model_answers else prompt,
                             bad_enum=fault == "bad-enum")
        content = json.dumps(answer, ensure_ascii=False) if self.reply is None else self.reply(body)
        if fault == "malformed":
            content = content[: len(content) // 2]
        else:
            stats.ok[prompt] += fault != "bad-enum"
        stats.by_status[200] += 1
        usage = self.count_usage(body, content) if self.count_usage else \
            {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        if body.get("stream"):
            return 200, Streamed(content, body.get("model", ""), usage), {}
        return 200, {"id": "x", "object": "chat.completion", "model": body.get("model"), "usage": usage,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                  "finish_reason": "stop"}]}, {}

    def _latency(self, prompt: str) -> float:
        if not self.latency_spread:
            return self.latency_s
        return self.latency_s * (1 + self.latency_spread * int(marker(prompt)[:4], 16) / 0x10000)

    async def _stream(self, writer: asyncio.StreamWriter, streamed: Streamed) -> None:
        """SSE events as HTTP chunks, `stream_gap_s` apart, so a test can see them arrive one by one."""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        step = max(1, len(streamed.content) // 4)
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        events += [{"choices": [{"index": 0, "delta": {"content": streamed.content[i:i + step]},
                                 "finish_reason": None}]} for i in range(0, len(streamed.content), step)]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": streamed.usage})
        for payload in [*(json.dumps({"model": streamed.model, **e}) for e in events), "[DONE]"]:
            data = f"data: {payload}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            await asyncio.sleep(self.stream_gap_s)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def answer(body: dict[str, Any], prompt: str, *, bad_enum: bool = False) -> dict[str, Any]:
        """A schema-valid answer for the row prompt (an invalid enum value with bad_enum)."""
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {
            "properties": {"answer": {"type": "string"}}}
        digest = int(marker(prompt), 16)
        answer: dict[str, Any] = {}
        for name, prop in schema.get("properties", {}).items():
            if "enum" in prop:
                answer[name] = "not-an-option" if bad_enum else prop["enum"][digest % len(prop["enum"])]
            elif prop.get("type") == "integer":
                answer[name] = digest % 1000
            else:
                answer[name] = f"{name}:{marker(prompt)}"
        return answer


def gateway_yaml(*upstreams: FakeUpstream, extra: dict[str, str] | None = None, groups: str = "") -> str:
    """A config with one deployment `m<i>` per upstream; `extra` adds YAML flow fields per deployment."""
    lines = []
    for i in range(len(upstreams)):
        fields = (extra or {}).get(f"m{i}", "")
        if "timeout:" not in fields:
            fields = ", ".join(f for f in ("timeout: 2", fields) if f)
        lines.append(f"  - {{name: m{i}, model: fake-{i}, channel: c{i}, api_key: '${{KEY}}', {fields}}}")
    models = "\n".join(lines)
    channels = "\n".join(f"  c{i}: {{base_url: '{up.base_url.removesuffix('/v1')}', api_path: /v1/chat/completions}}"
                         for i, up in enumerate(upstreams))
    return f"models:\n{models}\nchannels:\n{channels}\n{groups}"
