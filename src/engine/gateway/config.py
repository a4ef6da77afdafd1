"""The gateway config (YAML): deployments ("models"), channels and groups, in AI-DataFlux's vocabulary."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from engine.spec.loader import SpecError, SpecIssue, load_yaml_model
from engine.spec.models import StrictModel

_ENV = re.compile(r"\$\{(\w+)\}")


class Channel(StrictModel):
    """Where a deployment's requests go."""

    base_url: str = Field(min_length=1, description="e.g. https://api.openai.com or http://127.0.0.1:8000")
    api_path: str = Field("/v1/chat/completions", description="Appended to base_url.")
    timeout: float = Field(60.0, gt=0)
    proxy: str | None = None
    ssl_verify: bool = True


class Price(StrictModel):
    """Cost per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class MockBehaviour(StrictModel):
    """How a `mock` deployment behaves."""

    latency_s: float = Field(0.0, ge=0)
    rate_429: float = Field(0.0, ge=0, le=1)
    rate_500: float = Field(0.0, ge=0, le=1)


class Deployment(StrictModel):
    """One model behind one channel, with its share of traffic and its limits."""

    name: str = Field(min_length=1, description="What requests and groups call it.")
    model: str = Field(min_length=1, description="The upstream's own model name.")
    provider: Literal["openai", "mock"] = "openai"
    channel: str | None = Field(None, description="A key of `channels` (not for mock).")
    api_key: str | None = Field(None, description="Use ${ENV_VAR}; resolved at start-up, never stored.")
    weight: float = Field(1.0, ge=0)
    safe_rps: float | None = Field(None, gt=0, description="Requests/s; bursts up to twice this.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute.")
    max_in_flight: int | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0, description="Seconds; defaults to the channel's.")
    temperature: float | None = Field(None, ge=0, le=2)
    supports_json_schema: bool = True
    supports_advanced_params: bool = True
    price: Price = Field(default_factory=Price)
    mock: MockBehaviour = Field(default_factory=MockBehaviour)


class GatewayConfig(StrictModel):
    """All deployments, their channels, and named groups of deployments."""

    models: list[Deployment] = Field(min_length=1)
    channels: dict[str, Channel] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict, description="Group or alias -> model names.")

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names = [m.name for m in self.models]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"models: names must be unique; repeated: {', '.join(repeated)}")
        for deployment in self.models:
            if deployment.provider == "openai" and deployment.channel not in self.channels:
                raise ValueError(f"models.{deployment.name}.channel: {deployment.channel!r} is not a channel "
                                 f"(channels: {', '.join(self.channels) or 'none'})")
        for group, members in self.groups.items():
            unknown = [m for m in members if m not in names]
            if not members or unknown:
                raise ValueError(f"groups.{group}: unknown model(s) {', '.join(unknown)}" if unknown
                                 else f"groups.{group}: empty")
            if group in names or group == "auto":
                raise ValueError(f"groups.{group}: the name is taken by a model or by 'auto'")
        return self


def load_gateway(text: str) -> GatewayConfig:
    """Parse and validate a gateway YAML; SpecError names field, line and column."""
    return load_yaml_model(GatewayConfig, text, what="a gateway config")


def resolve_secrets(config: GatewayConfig, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Each deployment's API key with ${VAR} filled in; a missing variable is named, the secret never shown."""
    environment = os.environ if env is None else env
    keys: dict[str, str | None] = {}
    for index, deployment in enumerate(config.models):
        if deployment.api_key is None:
            keys[deployment.name] = None
            continue
        missing = [name for name in _ENV.findall(deployment.api_key) if name not in environment]
        if missing:
            raise SpecError([SpecIssue(f"models.{index}.api_key",
                                       f"environment variable {missing[0]} is not set (model {deployment.name})")])
        keys[deployment.name] = _ENV.sub(lambda m: environment[m.group(1)], deployment.api_key)
    return keys
