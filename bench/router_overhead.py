#!/usr/bin/env python3
"""Router overhead in process, and the HTTP gateway against fakellm directly.

    .venv/bin/python -m bench.router_overhead [--fakellm ../shared/fakellm/fakellm.py]

1. In process (mock provider, no network): router.chat vs the mock client alone, per request.
2. Over HTTP, sequential requests: p50/p95 straight to fakellm vs through `rowloom serve` (its own process)
   in front of it, at 0 ms and 50 ms upstream latency.
3. Ceilings with fakellm's loadprobe.py (-c 200): fakellm directly, and the gateway in front of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._fakellm import DEFAULT, fakellm, free_port, tree_cpu_seconds, wait_until_up
from engine import event_loop
from engine.gateway.config import load_gateway
from engine.gateway.mock import MockClient
from engine.gateway.router import Router
from engine.gateway.types import ChatRequest

REQUEST = {"model": "fake-small", "messages": [{"role": "user", "content": "row 1 fields: a, b"}]}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


async def in_process(count: int) -> None:
    request = ChatRequest(model="auto", messages=REQUEST["messages"])
    mock = MockClient()
    router = Router(load_gateway("models: [{name: a, model: m, provider: mock}, {name: b, model: m, provider: mock}]"))
    for _ in range(200):
        await router.chat(request)
        await mock.chat(request)
    timings = {}
    for name, client in (("mock alone", mock), ("router over mock", router)):
        started = time.perf_counter()
        for _ in range(count):
            await client.chat(request)
        timings[name] = (time.perf_counter() - started) / count * 1e6
    await router.aclose()
    overhead = timings["router over mock"] - timings["mock alone"]
    print(f"in process, {count:,} requests: mock alone {timings['mock alone']:.1f} us, router over mock "
          f"{timings['router over mock']:.1f} us -> router overhead {overhead:.1f} us/request (target <= 100 us)")


async def sequential(url: str, count: int) -> tuple[float, float]:
    samples = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(20):
            (await http.post(url, json=REQUEST)).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            (await http.post(url, json=REQUEST)).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def start_gateway(upstream: str, folder: Path, processes: int = 1,
                  redis_url: str = "") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = folder / "gateway.yaml"
    config.write_text(f"models: [{{name: fake-small, model: fake-small, channel: fake}}]\n"
                      f"channels: {{fake: {{base_url: '{upstream.removesuffix('/v1')}'}}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {  # one process: limits in process
        "GATEWAY_CONFIG": str(config), "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/gw.db", "LOG_LEVEL": "WARNING"}
    if processes > 1:  # several processes share the limits through Redis
        env["REDIS_URL"] = redis_url
    process = subprocess.Popen([sys.executable, "-m", "rowloom.cli", "serve", "--port", str(port),
                                "--workers", str(processes)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(f"http://127.0.0.1:{port}/ping")
    return process, f"http://127.0.0.1:{port}/v1"


def loadprobe(script: Path, url: str, concurrency: int, count: int) -> dict[str, object]:
    output = subprocess.run([sys.executable, str(script.parent / "loadprobe.py"), "--url", url + "/chat/completions",
                             "-c", str(concurrency), "-n", str(count)], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fakellm", type=Path, default=DEFAULT)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--gateway-processes", type=int, default=1,
                        help="`rowloom serve --workers N`; N > 1 shares limits through --redis-url")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    event_loop.run(in_process(20_000))
    with tempfile.TemporaryDirectory(prefix="rowloom-router-") as tmp:
        for latency in (0, 50):
            with fakellm(args.fakellm, "--latency-ms", str(latency)) as upstream:
                gateway, gateway_url = start_gateway(upstream, Path(tmp), args.gateway_processes, args.redis_url)
                try:
                    direct = asyncio.run(sequential(upstream + "/chat/completions", args.requests))
                    routed = asyncio.run(sequential(gateway_url + "/chat/completions", args.requests))
                    print(f"HTTP at {latency} ms upstream: direct p50 {direct[0]:.2f} / p95 {direct[1]:.2f} ms, "
                          f"through the gateway p50 {routed[0]:.2f} / p95 {routed[1]:.2f} ms -> added p50 "
                          f"{routed[0] - direct[0]:.2f} ms (target <= 2 ms)", flush=True)
                    if latency == 0:
                        print(f"ceiling, fakellm directly: {loadprobe(args.fakellm, upstream, 200, 20_000)}")
                        before = tree_cpu_seconds(gateway.pid)
                        probe = loadprobe(args.fakellm, gateway_url, 200, 20_000)
                        used = tree_cpu_seconds(gateway.pid) - before
                        print(f"ceiling, through the gateway: {probe} (target >= 1,800 requests/s); gateway CPU "
                              f"{used / 20_000 * 1000:.3f} ms a request (steadier than requests/s on a shared VM)",
                              flush=True)
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=10)


if __name__ == "__main__":
    main()
