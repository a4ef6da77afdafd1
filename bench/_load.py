"""A raw asyncio load client for a chat-completions endpoint (keep-alive connections, fixed headers).

Like fakellm's loadprobe.py, with one addition: it can send an API key, so a gateway with key checks on can be
measured the same way as one without.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlparse


async def _client(host: str, port: int, path: str, headers: str, jobs: asyncio.Queue[int],
                  counts: Counter[int], model: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            try:
                i = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": f"row {i} fields: a, b"}]})
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{headers}"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            length = next((int(line.split(":", 1)[1]) for line in head[1:]
                           if line.lower().startswith("content-length:")), 0)
            await reader.readexactly(length)
            counts[int(head[0].split()[1])] += 1
    finally:
        writer.close()


async def probe(url: str, *, concurrency: int, count: int, api_key: str | None = None,
                model: str = "fake-small") -> dict[str, Any]:
    """Send `count` requests over `concurrency` connections; requests/s and the statuses seen."""
    parsed = urlparse(url)
    headers = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        jobs.put_nowait(i)
    counts: Counter[int] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_client(parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path, headers, jobs,
                                   counts, model) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"requests": count, "seconds": round(seconds, 3), "rps": round(count / seconds, 1),
            "status": {str(k): v for k, v in counts.items()}}
