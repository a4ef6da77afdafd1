"""The upstream transport: aiohttp behind the httpx transport API, plus a whole-body POST for plain answers.

A chat completion is one small JSON body that is always read whole. Through httpx's API it costs an
httpx.Request, a streamed httpx.Response read chunk by chunk through several layers of async iterators,
and the conversions between httpx's and aiohttp's headers: together about a fifth of the engine's CPU per
row (py-spy over bench/engine_throughput at 256 in flight). `post_whole` sends the same request through
the same aiohttp pool without those layers. Anything else (streams, proxies, injected or instrumented
transports) goes through `handle_async_request`, the ordinary httpx path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from multidict import CIMultiDict
from yarl import URL


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """An upstream's whole answer: status, headers (case-insensitive) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text, for error messages."""
        return self.body.decode("utf-8", "replace")

    @classmethod
    def of(cls, response: httpx.Response) -> UpstreamReply:
        """The answer of an httpx response that has been read."""
        return cls(response.status_code, response.headers, response.content)


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    """httpx.Timeout(seconds) in aiohttp's terms: connect, pool wait and each read."""
    return aiohttp.ClientTimeout(sock_connect=seconds, sock_read=seconds, connect=seconds)


class UpstreamTransport(AiohttpTransport):
    """httpx-aiohttp's transport, one connection pool, with `post_whole` for small JSON answers."""

    def __init__(self, *, max_connections: int = 1024, proxy: str | None = None, verify: bool = True) -> None:
        super().__init__(limits=httpx.Limits(max_connections=max_connections,
                                             max_keepalive_connections=max_connections),
                         verify=verify, proxy=httpx.Proxy(proxy) if proxy else None)

    @property
    def direct(self) -> bool:
        """Whether `post_whole` applies (proxied requests take the httpx path, which knows proxies)."""
        return self.proxy is None

    async def post_whole(self, url: URL, headers: CIMultiDict[str], body: bytes, seconds: float) -> UpstreamReply:
        """POST `body` and read the whole answer; aiohttp's errors raised as httpx's, like the httpx path."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with map_aiohttp_exceptions():
            async with self.client.post(url, headers=headers, data=body, allow_redirects=False,
                                        compress=False, timeout=_timeout(seconds)) as response:
                return UpstreamReply(response.status, response.headers, await response.read())
