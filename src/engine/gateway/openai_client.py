"""A ChatClient for one OpenAI-compatible upstream over httpx (the router's building block).

The default transport is aiohttp's (package httpx-aiohttp) behind the httpx API: httpcore's pool walks
every connection on every request event (httpx issue #3215), which at 64-256 requests in flight cost
4-6 CPU seconds per 1,000 rows here (docs/benchmarks.md has the measurements). Bodies are encoded and
decoded with orjson: the standard library's json was a tenth of the engine's CPU per row.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

import aiohttp
import httpx
import orjson
from multidict import CIMultiDict
from yarl import URL

from engine.gateway.errors import (
    GatewayError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamConnectionError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from engine.gateway.transport import UpstreamReply, UpstreamTransport
from engine.gateway.types import ChatDelta, ChatRequest, ChatResult, EmbeddingResult, Usage

REJECTED = frozenset({400, 401, 403, 404, 413, 422})


class _Target(NamedTuple):
    """An upstream URL parsed once for each of the two HTTP stacks."""

    httpx: httpx.URL
    aiohttp: URL


class OpenAIClient:
    """POSTs to `{base_url}/chat/completions`; `transport` can be injected (default: aiohttp's).

    Requests go straight to the httpx transport: an upstream call needs none of httpx.AsyncClient's
    redirect, auth or cookie handling, and skipping it halves the client's CPU per request. With the
    default transport (no proxy), plain answers skip httpx's request and response objects too
    (`UpstreamTransport.post_whole`); streams, proxies and injected transports take the httpx path.
    """

    def __init__(self, base_url: str, *, path: str = "/chat/completions", api_key: str | None = None,
                 model: str | None = None, timeout_s: float = 60.0, max_connections: int = 512,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.model = model
        self.timeout_s = timeout_s
        url = httpx.URL(base_url.rstrip("/") + "/" + path.lstrip("/"))  # parsed once, not per request
        self._url = _Target(url, URL(str(url)))
        embeddings = url.copy_with(path=url.path.rsplit("/chat/completions", 1)[0] + "/embeddings")
        self._embeddings_url = _Target(embeddings, URL(str(embeddings)))
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._direct_headers = CIMultiDict(headers)  # aiohttp adds Host and Content-Length itself
        headers["Host"] = url.netloc.decode("ascii")
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._owns_transport = transport is None  # a shared transport is closed by whoever shares it
        self._transport = transport or UpstreamTransport(max_connections=max_connections)
        self._direct = self._transport if isinstance(self._transport, UpstreamTransport) and \
            self._transport.direct else None

    def _http_request(self, url: httpx.URL, content: bytes, seconds: float) -> httpx.Request:
        """The request, built without httpx's per-request header work (see `_plain_headers`)."""
        request = httpx.Request("POST", url, stream=httpx.ByteStream(content),
                                headers=[*self._headers, (b"Content-Length", str(len(content)).encode())],
                                extensions={"timeout": httpx.Timeout(seconds).as_dict()})
        _plain_headers(request.headers)
        request.read()  # the body is in memory already: the transport sends it as bytes
        return request

    async def _post(self, url: _Target, body: dict[str, Any], model: str, seconds: float) -> UpstreamReply:
        """POST a JSON body and read the whole answer; failures mapped onto the gateway's exception tree."""
        content = encode_body(body)
        with transport_errors(model, seconds):
            if self._direct is not None:
                answer = await self._direct.post_whole(url.aiohttp, self._direct_headers, content, seconds)
            else:
                response = await self._transport.handle_async_request(self._http_request(url.httpx, content, seconds))
                _plain_headers(response.headers)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                answer = UpstreamReply.of(response)
        raise_for_status(answer, model)
        return answer

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Send one request; map every failure onto the gateway's exception tree."""
        model = self.model or request.model
        started = time.monotonic()
        answer = await self._post(self._url, request.body(model), model, request.timeout_s or self.timeout_s)
        return parse_completion(answer, model, time.monotonic() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Send with `stream: true` and yield each SSE event's content as it arrives."""
        model = self.model or request.model
        seconds = request.timeout_s or self.timeout_s
        body = request.body(model) | {"stream": True, "stream_options": {"include_usage": True}}
        http_request = self._http_request(self._url.httpx, encode_body(body), seconds)
        with transport_errors(model, seconds):
            response = await self._transport.handle_async_request(http_request)
            _plain_headers(response.headers)
            try:
                if response.status_code >= 300:
                    await response.aread()
                    raise_for_status(UpstreamReply.of(response), model)
                async for event in _sse_events(response):
                    yield event
            finally:
                await response.aclose()

    async def embed(self, inputs: list[str], *, model: str) -> EmbeddingResult:
        """POST to the embeddings path beside the chat path (…/embeddings)."""
        name = self.model or model
        answer = await self._post(self._embeddings_url, {"model": name, "input": inputs}, name, self.timeout_s)
        return parse_embeddings(answer.body, name)

    async def aclose(self) -> None:
        """Close the connection pool (unless it was handed in)."""
        if self._owns_transport:
            await self._transport.aclose()


def parse_embeddings(body: bytes, name: str) -> EmbeddingResult:
    """An embeddings answer's vectors, in input order, and its usage; MalformedResponse when it is none."""
    try:
        answer = orjson.loads(body)
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda item: item["index"])]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedResponse(f"{name}: not an embeddings response ({exc})", model=name) from None
    return EmbeddingResult(vectors, name, usage_of(answer.get("usage")))


def encode_body(body: dict[str, Any]) -> bytes:
    """A request body as JSON: orjson, or json for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False).encode()


def _plain_headers(headers: httpx.Headers) -> None:
    """Fix the headers' charset: httpx otherwise re-probes every header's encoding on each access
    (all of them, for every lookup), which profiled as the largest single cost of an upstream call."""
    headers.encoding = "iso-8859-1"  # decodes any byte; HTTP/1.1 header values are ASCII in practice


@contextlib.contextmanager
def transport_errors(model: str, seconds: float) -> Iterator[None]:
    """httpx's transport failures raised as the gateway's (no answer in time, cannot connect, connection lost)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        if isinstance(exc.__cause__, aiohttp.ClientConnectorError):  # httpx-aiohttp calls "refused" a timeout
            raise UpstreamConnectionError(f"{model}: cannot connect: {exc.__cause__}", model=model) from None
        raise UpstreamTimeout(f"{model}: no answer in {seconds:g}s ({type(exc).__name__})", model=model) from None
    except httpx.TransportError as exc:
        raise UpstreamConnectionError(f"{model}: {type(exc).__name__}: {exc}", model=model) from None


async def _sse_events(response: httpx.Response) -> AsyncIterator[ChatDelta]:
    """Chat deltas from an OpenAI event stream (`data: {...}` lines, ended by `data: [DONE]`)."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                event = orjson.loads(data)
            except ValueError:
                raise MalformedResponse(f"not a JSON event: {data[:80]!r}") from None
            choices = event.get("choices") or []
            usage = event.get("usage")
            content = ((choices[0].get("delta") or {}).get("content") or "") if choices else ""
            finished = bool(choices and choices[0].get("finish_reason"))
            yield ChatDelta(content=content, finished=finished or usage is not None, model=event.get("model"),
                            usage=usage_of(usage) if usage else None)


def raise_for_status(answer: UpstreamReply, model: str) -> None:
    """Raise the gateway error matching an upstream's non-2xx status."""
    status = answer.status
    if status < 300:
        return
    detail = f"{model}: HTTP {status}: {answer.text[:300]}"
    if status == 429:
        raise RateLimited(detail, status=status, model=model, retry_after_s=retry_after(answer))
    if status in REJECTED:
        raise RequestRejected(detail, status=status, model=model)
    if status >= 500 or status == 408:
        raise UpstreamUnavailable(detail, status=status, model=model, retry_after_s=retry_after(answer))
    raise GatewayError(detail, status=status, model=model)


def retry_after(answer: UpstreamReply) -> float | None:
    """Seconds from a Retry-After header given in seconds (an HTTP date is ignored)."""
    value = answer.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def parse_completion(answer: UpstreamReply, model: str, latency_s: float) -> ChatResult:
    """Content and usage of a chat.completion body."""
    try:
        body: dict[str, Any] = orjson.loads(answer.body)
        content = body["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError("content is not text")
        usage = usage_of(body.get("usage"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponse(f"{model}: not a chat completion ({exc})", model=model) from None
    return ChatResult(content=content, model=str(body.get("model") or model), latency_s=latency_s, usage=usage)


def usage_of(usage: Any) -> Usage:
    """Tokens from an answer's `usage`: prompt, completion, and the prompt's cached part (OpenAI's
    `prompt_tokens_details.cached_tokens`, part of the prompt tokens; or Anthropic's `cache_read_input_tokens`,
    counted apart from its input tokens)."""
    if not isinstance(usage, dict):
        return Usage()
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens"):
        return Usage(prompt, completion, cached_tokens=int(details["cached_tokens"]))
    read = int(usage.get("cache_read_input_tokens") or 0)
    return Usage(prompt + read, completion, cached_tokens=read)
