#!/usr/bin/env python3
"""Router overhead in process, and the HTTP gateway against fakellm directly.

    .venv/bin/python -m bench.router_overhead [--fakellm ../shared/fakellm/fakellm.py]

1. In process (mock provider, no network): router.chat vs the mock client alone, per request.
2. Over HTTP, sequential requests: p50/p95 straight to fakellm vs through `rowloom serve` (its own process)
   in front of it, at 0 ms and 50 ms upstream latency.
3. Ceilings (200 connections): fakellm directly, and the gateway in front of it, once with API key checks on (the
   default: every request carries a key) and once with them off (AUTH_REQUIRED=false, on loopback), one after
   the other, so the price of the key checks is read off one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._fakellm import DEFAULT, fakellm, free_port, tree_cpu_seconds, wait_until_up
from bench._load import probe
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


async def sequential(url: str, count: int, api_key: str | None = None) -> tuple[float, float]:
    samples = []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        for _ in range(20):
            (await http.post(url, json=REQUEST)).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            (await http.post(url, json=REQUEST)).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def gateway_env(upstream: str, folder: Path, processes: int, redis_url: str) -> dict[str, str]:
    """The environment of a gateway in front of `upstream`, with its own SQLite file."""
    config = folder / "gateway.yaml"
    config.write_text(f"models: [{{name: fake-small, model: fake-small, channel: fake}}]\n"
                      f"channels: {{fake: {{base_url: '{upstream.removesuffix('/v1')}'}}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {  # one process: limits in process
        "GATEWAY_CONFIG": str(config), "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/gw.db", "LOG_LEVEL": "WARNING",
        "API_HOST": "127.0.0.1"}
    if processes > 1:  # several processes share the limits through Redis
        env["REDIS_URL"] = redis_url
    return env


def gateway_key(env: dict[str, str]) -> str:
    """A gateway key made in the gateway's database (`rowloom keys create`)."""
    subprocess.run([sys.executable, "-m", "rowloom", "migrate"], env=env, check=True, capture_output=True)
    made = subprocess.run([sys.executable, "-m", "rowloom", "keys", "create", "--name", "bench", "--scope", "gateway",
                           "--quiet"], env=env, check=True, capture_output=True, text=True)
    return made.stdout.strip()


def start_gateway(env: dict[str, str], processes: int = 1, *, keys: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "rowloom", "serve", "--port", str(port), "--no-migrate",
                                "--workers", str(processes)], env=env | {"AUTH_REQUIRED": str(keys).lower()},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(f"http://127.0.0.1:{port}/ping")
    return process, f"http://127.0.0.1:{port}/v1"


def ceiling(url: str, api_key: str | None = None) -> dict[str, object]:
    """200 connections, 20,000 requests."""
    return event_loop.run(probe(url + "/chat/completions", concurrency=200, count=20_000, api_key=api_key))


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
                env = gateway_env(upstream, Path(tmp), args.gateway_processes, args.redis_url)
                key = gateway_key(env)
                gateway, gateway_url = start_gateway(env, args.gateway_processes)
                try:
                    direct = asyncio.run(sequential(upstream + "/chat/completions", args.requests))
                    routed = asyncio.run(sequential(gateway_url + "/chat/completions", args.requests, key))
                    print(f"HTTP at {latency} ms upstream: direct p50 {direct[0]:.2f} / p95 {direct[1]:.2f} ms, "
                          f"through the gateway p50 {routed[0]:.2f} / p95 {routed[1]:.2f} ms -> added p50 "
                          f"{routed[0] - direct[0]:.2f} ms (target <= 2 ms)", flush=True)
                    if latency == 0:
                        print(f"ceiling, fakellm directly: {ceiling(upstream)}")
                        measure_ceiling(gateway, gateway_url, key, "with key checks")
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=10)
                if latency == 0:
                    gateway, gateway_url = start_gateway(env, args.gateway_processes, keys=False)
                    try:
                        measure_ceiling(gateway, gateway_url, None, "without key checks (AUTH_REQUIRED=false)")
                    finally:
                        gateway.terminate()
                        gateway.wait(timeout=10)


def measure_ceiling(gateway: subprocess.Popen[bytes], url: str, key: str | None, label: str) -> None:
    """The gateway's requests/s and CPU per request under 200 connections."""
    before = tree_cpu_seconds(gateway.pid)
    result = ceiling(url, key)
    used = tree_cpu_seconds(gateway.pid) - before
    print(f"ceiling through the gateway, {label}: {result} (target >= 1,800 requests/s); gateway CPU "
          f"{used / 20_000 * 1000:.3f} ms a request (steadier than requests/s on a shared VM)", flush=True)


if __name__ == "__main__":
    main()
