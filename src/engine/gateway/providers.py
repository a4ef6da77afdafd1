"""Client factories, one per provider: how the router turns a deployment of the gateway config into a client.

A provider is a name in `Deployment.provider` and a factory here; the router looks the factory up and
knows nothing else about it. Upstream HTTP connections are pooled per (proxy, ssl_verify) in
`UpstreamConnections`, shared by every deployment that uses the same pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from engine.gateway.config import Deployment, GatewayConfig
from engine.gateway.mock import MockClient
from engine.gateway.openai_client import OpenAIClient
from engine.gateway.transport import UpstreamTransport
from engine.gateway.types import ChatClient


class UpstreamConnections:
    """One HTTP transport per (proxy, ssl_verify), optionally traced (a client span per upstream call)."""

    def __init__(self, *, traced: bool = False) -> None:
        self.traced = traced
        self._transports: dict[tuple[str | None, bool], httpx.AsyncBaseTransport] = {}

    def transport(self, proxy: str | None, verify: bool) -> httpx.AsyncBaseTransport:
        """The shared transport for this proxy and TLS setting, made on first use."""
        key = (proxy, verify)
        if key not in self._transports:
            transport: httpx.AsyncBaseTransport = UpstreamTransport(proxy=proxy, verify=verify)
            if self.traced:
                from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

                transport = AsyncOpenTelemetryTransport(transport)
            self._transports[key] = transport
        return self._transports[key]

    async def aclose(self) -> None:
        """Close every pool."""
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()


class ClientFactory(Protocol):
    """Build the client of one deployment (its API key already resolved)."""

    def __call__(self, deployment: Deployment, *, config: GatewayConfig, api_key: str | None,
                 connections: UpstreamConnections) -> ChatClient:
        ...


def openai_client(deployment: Deployment, *, config: GatewayConfig, api_key: str | None,
                  connections: UpstreamConnections) -> ChatClient:
    """An OpenAI-compatible upstream behind the deployment's channel."""
    assert deployment.channel is not None  # the config's reference check guarantees it
    channel = config.channels[deployment.channel]
    return OpenAIClient(channel.base_url, path=channel.api_path, api_key=api_key, model=deployment.model,
                        timeout_s=deployment.timeout or channel.timeout,
                        transport=connections.transport(channel.proxy, channel.ssl_verify))


def mock_client(deployment: Deployment, *, config: GatewayConfig, api_key: str | None,
                connections: UpstreamConnections) -> ChatClient:
    """The built-in mock model: local, deterministic answers, with the configured latency and faults."""
    behaviour = deployment.mock
    return MockClient(latency_s=behaviour.latency_s, rate_429=behaviour.rate_429, rate_500=behaviour.rate_500,
                      name=deployment.name, seed=behaviour.seed)


PROVIDERS: Mapping[str, ClientFactory] = {"openai": openai_client, "mock": mock_client}
