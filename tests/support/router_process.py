"""A router process for the limit tests: sends N requests at once through a Router with `safe_rps`.

    python -m tests.support.router_process BASE_URL REDIS_URL PREFIX RPS N

REDIS_URL `-` keeps the limits in the process. The router runs apart from the test's fake upstream so that
a pause of the router's event loop (a garbage collection, say) cannot delay the upstream's clock too and
bunch requests that left on time.
"""

from __future__ import annotations

import asyncio
import sys

from core.shared_limits import SharedLimits
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from engine.gateway.types import ChatRequest


async def main(base_url: str, redis_url: str, prefix: str, rps: float, count: int) -> None:
    config = load_gateway(f"models: [{{name: shared, model: fake, channel: c, safe_rps: {rps}}}]\n"
                          f"channels: {{c: {{base_url: '{base_url}', api_path: /v1/chat/completions}}}}\n")
    router = Router(config, shared=None if redis_url == "-" else SharedLimits.from_url(redis_url, prefix=prefix))
    try:
        await asyncio.gather(*(router.chat(ChatRequest(model="auto", timeout_s=60, messages=[
            {"role": "user", "content": f"{prefix} {id(router)} {i}"}])) for i in range(count)))
    finally:
        await router.aclose()


if __name__ == "__main__":
    url, redis, prefix, rps, count = sys.argv[1:6]
    asyncio.run(main(url, redis, prefix, float(rps), int(count)))
