"""The gateway config (YAML): deployments ("models"), channels and groups, in AI-DataFlux's vocabulary."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from engine.errors import ErrorDetail, SpecError
from engine.spec.loader import load_yaml_model
from engine.spec.models import DEFER_REFERENCES, Location, StrictModel

_ENV = re.compile(r"\$\{(\w+)\}")


class Channel(StrictModel):
    """Where a deployment's requests go."""

    base_url: str = Field(min_length=1, description="e.g. https://api.openai.com or http://127.0.0.1:8000")
    api_path: str = Field("/v1/chat/completions", description="Appended to base_url.")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for an answer (a deployment's own timeout wins).")
    proxy: str | None = Field(None, description="An HTTP proxy URL for this channel's requests.")
    ssl_verify: bool = Field(True, description="Verify the upstream's TLS certificate.")


class Price(StrictModel):
    """Cost per million tokens."""

    input: float = Field(0.0, ge=0, description="Cost of one million input (prompt) tokens.")
    output: float = Field(0.0, ge=0, description="Cost of one million output (completion) tokens.")
    cached_input: float | None = Field(None, ge=0, description="Cost of one million input tokens the provider "
                                                                "served from its prompt cache (default: `input`).")
    batch_input: float | None = Field(None, ge=0, description="Cost of one million input tokens sent in a provider "
                                                               "batch (default: half of `input`).")
    batch_output: float | None = Field(None, ge=0, description="Cost of one million output tokens answered in a "
                                                                "provider batch (default: half of `output`).")

    def cost(self, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0) -> float:
        """What these tokens cost; `cached_tokens` (part of the prompt) at the cached rate."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt_tokens - cached_tokens) * self.input + cached_tokens * cached_rate
                + completion_tokens * self.output) / 1e6

    def batch_cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """What these tokens cost answered in a provider batch."""
        rate_in = self.input / 2 if self.batch_input is None else self.batch_input
        rate_out = self.output / 2 if self.batch_output is None else self.batch_output
        return (prompt_tokens * rate_in + completion_tokens * rate_out) / 1e6


_WINDOW = re.compile(r"^(\d+)h$")


class BatchSupport(StrictModel):
    """A deployment's provider batches: where they go, how big each may be, and how often they are looked at."""

    base_url: str | None = Field(None, description="Where the Files and Batches endpoints are (default: the "
                                                   "channel's base_url followed by /v1).")
    max_requests: int = Field(50_000, ge=1, le=50_000, description="Requests in one batch, at most.")
    max_bytes: int = Field(200 << 20, ge=1024, le=200 << 20, description="Bytes of one batch's input file, at most.")
    poll_s: float = Field(60.0, gt=0, le=3600, description="Seconds between two looks at a run's open batches.")
    window: str = Field("24h", pattern=_WINDOW.pattern,
                        description="The completion window asked for (the provider's, e.g. 24h).")
    retry: Literal["live", "batch"] = Field("live", description=(
        "A retry with no line yet (after an error line, or to re-ask an answer not accepted): `live` sends it at "
        "once at the live price, `batch` puts it in a next batch."))
    on_expiry: Literal["resubmit", "live"] = Field("resubmit", description=(
        "The requests an expired, failed or cancelled batch did not answer (its finished lines are kept): "
        "`resubmit` puts them in a next batch, `live` sends them live at once."))
    mock_delay_s: float = Field(0.0, ge=0, description="A `mock` deployment: seconds before its batches end.")

    @property
    def window_s(self) -> float:
        """The completion window in seconds."""
        match = _WINDOW.match(self.window)
        assert match is not None
        return int(match.group(1)) * 3600.0


class MockBehaviour(StrictModel):
    """How a `mock` deployment behaves."""

    latency_s: float = Field(0.0, ge=0, description="Seconds before each answer.")
    rate_429: float = Field(0.0, ge=0, le=1, description="Share of prompts answered 429 on their first attempt.")
    rate_500: float = Field(0.0, ge=0, le=1, description="Share of prompts answered 500 on their first attempt.")
    seed: int = Field(0, ge=0, description="Mixed into every answer's draw: mock deployments with different seeds "
                                           "answer differently (a fan-out over them shows disagreements).")


class Deployment(StrictModel):
    """One model behind one channel, with its share of traffic and its limits."""

    name: str = Field(min_length=1, description="What requests and groups call it.")
    model: str = Field(min_length=1, description="The upstream's own model name.")
    provider: Literal["openai", "mock"] = Field("openai",
                                                description="`openai`: an OpenAI-compatible HTTP API; `mock`: "
                                                            "Rowloom's built-in model (no network).")
    channel: str | None = Field(None, description="A key of `channels` (not for mock).")
    api_key: str | None = Field(None, description="Use ${ENV_VAR}; resolved at start-up, never stored.")
    weight: float = Field(1.0, ge=0,
                          description="Share of traffic among the healthy deployments with capacity (0: never "
                                      "picked).")
    safe_rps: float | None = Field(None, gt=0, description="Requests in any 1 s window, never more.")
    tpm: int | None = Field(None, gt=0, description="Tokens in any 60 s window: each request counts its estimate "
                                                        "when sent, then its real usage.")
    max_in_flight: int | None = Field(None, gt=0,
                                      description="Requests at once to this deployment; more wait for a slot.")
    timeout: float | None = Field(None, gt=0, description="Seconds; defaults to the channel's.")
    temperature: float | None = Field(None, ge=0, le=2, description="Temperature sent when a request names none.")
    supports_json_schema: bool = Field(True,
                                       description="The upstream accepts `response_format` with a JSON schema (else "
                                                   "it is dropped).")
    supports_advanced_params: bool = Field(True, description="The upstream accepts `temperature` (else it is dropped).")
    price: Price = Field(default_factory=Price, description="What its tokens cost, for each job's and request's cost.")
    mock: MockBehaviour = Field(default_factory=MockBehaviour, description="How a `mock` deployment behaves.")
    batch: BatchSupport | None = Field(None, description="The deployment takes provider batches (OpenAI's Files and "
                                                         "Batches API; `mock`: its own), for steps in batch mode.")


class GatewayConfig(StrictModel):
    """All deployments, their channels, and named groups of deployments."""

    models: list[Deployment] = Field(min_length=1, description="The deployments requests are spread over.")
    channels: dict[str, Channel] = Field(default_factory=dict,
                                         description="Where deployments send their requests, by channel name.")
    groups: dict[str, list[str]] = Field(default_factory=dict, description="Group or alias -> model names.")

    def members(self, name: str) -> list[Deployment]:
        """The deployments a request for `name` (a model, a group, or `auto`) may use; [] for an unknown name."""
        if name == "auto":
            return list(self.models)
        names = self.groups.get(name, [name])
        return [d for d in self.models if d.name in names]

    def identity(self) -> str:
        """A name for what answers requests (the deployments, their upstreams and parameters; API keys as their
        `${VAR}` references): the answer cache's scope, so a changed gateway never serves the answers of the one
        before, whichever process or command reads the same config."""
        return "gateway " + hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> GatewayConfig:
        if not (info.context or {}).get(DEFER_REFERENCES):  # load_gateway reports them with positions
            for location, message in reference_errors(self):
                raise ValueError(f"{'.'.join(map(str, location))}: {message}")
        return self


def reference_errors(config: GatewayConfig) -> list[tuple[Location, str]]:
    """Errors between sections (names, channels, groups) that no single field can see."""
    errors: list[tuple[Location, str]] = []
    first: dict[str, int] = {}
    for index, deployment in enumerate(config.models):
        if deployment.name in first:
            errors.append((("models", index, "name"), f"{deployment.name!r} is already the name of "
                           f"models.{first[deployment.name]}; names must be unique (repeated: {deployment.name})"))
        first.setdefault(deployment.name, index)
        if deployment.provider == "openai" and deployment.channel not in config.channels:
            errors.append((("models", index, "channel") if deployment.channel else ("models", index),
                           f"{deployment.channel!r} is not a channel (channels: {', '.join(config.channels) or 'none'})"
                           if deployment.channel else "channel: required for provider openai (a key of channels)"))
    for group, members in config.groups.items():
        if group in first or group == "auto":
            errors.append((("groups", group), "the name is taken by a model or by 'auto'"))
        if not members:
            errors.append((("groups", group), "empty: name at least one model"))
        for position, member in enumerate(members):
            if member not in first:
                errors.append((("groups", group, position), f"unknown model {member!r} (models: {', '.join(first)})"))
    return errors


def load_gateway(text: str) -> GatewayConfig:
    """Parse and validate a gateway YAML; SpecError names field, line and column."""
    return load_yaml_model(GatewayConfig, text, what="a gateway config", references=reference_errors)


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
            raise SpecError([ErrorDetail(f"models.{index}.api_key",
                                       f"environment variable {missing[0]} is not set (model {deployment.name})")])
        keys[deployment.name] = _ENV.sub(lambda m: environment[m.group(1)], deployment.api_key)
    return keys
