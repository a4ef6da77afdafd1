"""Where a deployment's provider batches go: an OpenAI-compatible Files and Batches API, or the mock model's own
batches (in this process, to try batch mode offline). A provider is one class with these few calls; Anthropic's
Message Batches would be one more."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Protocol

import httpx
import orjson

from engine.gateway.batch_api import CHAT_URL, EMBEDDINGS_URL, BatchApi, BatchStatus, ProviderBatch
from engine.gateway.config import Deployment, GatewayConfig, resolve_secrets
from engine.gateway.mock import mock_answer, mock_embedding
from engine.gateway.router import adapt_request
from engine.gateway.types import ChatRequest

LABEL = "rowloom_batch"  # the metadata key naming a batch's entry in the run's ledger
Uploaded = Callable[[str], Awaitable[None]]


class BatchProvider(Protocol):
    """A deployment's batch endpoint: submit a file of requests, follow it, read its lines, cancel it."""

    async def submit(self, content: BinaryIO, *, label: str, uploaded: Uploaded, endpoint: str = CHAT_URL
                     ) -> ProviderBatch:
        """Upload `content` (a file of JSONL request lines to `endpoint`), tell `uploaded` the file id, then start a
        batch labelled `label`."""

    async def find(self, label: str) -> ProviderBatch | None:
        """The batch labelled `label`, if the provider has one (a crash came between its creation and its record)."""

    async def get(self, batch_id: str) -> ProviderBatch:
        """The batch as the provider sees it now."""

    async def lines(self, batch: ProviderBatch) -> Iterator[bytes]:
        """An ended batch's output and error lines (read once, split as they are taken)."""

    async def cancel(self, batch_id: str) -> None:
        """Stop the batch (its finished lines stay readable)."""

    async def clean_up(self, batch: ProviderBatch) -> None:
        """Delete the batch's files."""

    async def aclose(self) -> None:
        """Release connections."""


class OpenAIBatches:
    """OpenAI's Files and Batches endpoints (and every provider that copies them) under the deployment's channel."""

    def __init__(self, api: BatchApi, *, window: str) -> None:
        self.api = api
        self.window = window

    async def submit(self, content: BinaryIO, *, label: str, uploaded: Uploaded, endpoint: str = CHAT_URL
                     ) -> ProviderBatch:
        """Upload, record, create."""
        file_id = await self.api.upload(content, filename=f"{label}.jsonl")
        await uploaded(file_id)
        return await self.api.create(file_id, endpoint=endpoint, window=self.window, metadata={LABEL: label})

    async def find(self, label: str) -> ProviderBatch | None:
        """Looked for by its label in the provider's list."""
        return await self.api.find(LABEL, label)

    async def get(self, batch_id: str) -> ProviderBatch:
        """The batch now."""
        return await self.api.get(batch_id)

    async def lines(self, batch: ProviderBatch) -> Iterator[bytes]:
        """The output file's lines, then the error file's (each kept in a temporary file while it is read)."""
        files: list[BinaryIO] = []
        try:
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    files.append(tempfile.TemporaryFile(prefix="rowloom-batch-output-"))  # noqa: SIM115
                    await self.api.save(file_id, files[-1])
        except BaseException:
            for file in files:
                file.close()
            raise
        return _lines_of(files)

    async def cancel(self, batch_id: str) -> None:
        """Asked to cancel."""
        await self.api.cancel(batch_id)

    async def clean_up(self, batch: ProviderBatch) -> None:
        """Input, output and error files deleted."""
        for file_id in (batch.input_file_id, batch.output_file_id, batch.error_file_id):
            if file_id:
                await self.api.delete_file(file_id)

    async def aclose(self) -> None:
        """Connections closed."""
        await self.api.aclose()


@dataclass
class _MockBatch:
    batch: ProviderBatch
    lines: list[bytes]
    done_at: float
    label: str


class MockBatches:
    """The mock model's batches: answered in this process as the mock answers live requests, ready after the
    deployment's `batch.mock_delay_s`. A batch the process does not know (it started again) reads as expired."""

    _ids = itertools.count(1)

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self._batches: dict[str, _MockBatch] = {}

    async def submit(self, content: BinaryIO, *, label: str, uploaded: Uploaded, endpoint: str = CHAT_URL
                     ) -> ProviderBatch:
        """Answered now, shown ended after the delay."""
        number = next(self._ids)
        await uploaded(f"mock-file-{number}")
        out = [self._answer(orjson.loads(line)) for line in content if line.strip()]
        batch = ProviderBatch(id=f"mock-batch-{number}", status=BatchStatus.IN_PROGRESS,
                              input_file_id=f"mock-file-{number}", total=len(out))
        delay = self.deployment.batch.mock_delay_s if self.deployment.batch else 0.0
        self._batches[batch.id] = _MockBatch(batch, out, time.monotonic() + delay, label)
        return batch

    def _answer(self, line: dict[str, Any]) -> bytes:
        body = line["body"]
        answer: dict[str, Any]
        if line.get("url") == EMBEDDINGS_URL:
            embedded = mock_embedding(body["input"], name=self.deployment.name)
            answer = {"object": "list", "model": embedded.model,
                      "usage": {"prompt_tokens": embedded.usage.prompt_tokens},
                      "data": [{"object": "embedding", "index": i, "embedding": vector}
                               for i, vector in enumerate(embedded.vectors)]}
        else:
            request = ChatRequest(model=body["model"], messages=body["messages"],
                                  response_format=body.get("response_format"))
            chat = mock_answer(request, seed=self.deployment.mock.seed, name=self.deployment.name)
            usage = {"prompt_tokens": chat.usage.prompt_tokens, "completion_tokens": chat.usage.completion_tokens}
            answer = {"model": chat.model, "usage": usage,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": chat.content}}]}
        return orjson.dumps({"custom_id": line["custom_id"], "error": None,
                             "response": {"status_code": 200, "body": answer}})

    async def find(self, label: str) -> ProviderBatch | None:
        """Known only to this process."""
        held = next((b for b in self._batches.values() if b.label == label), None)
        return None if held is None else await self.get(held.batch.id)

    async def get(self, batch_id: str) -> ProviderBatch:
        """Completed once its delay passed; expired if this process never made it."""
        held = self._batches.get(batch_id)
        if held is None:
            return ProviderBatch(id=batch_id, status=BatchStatus.EXPIRED, input_file_id="")
        if held.batch.status is BatchStatus.IN_PROGRESS and time.monotonic() >= held.done_at:
            held.batch = replace(held.batch, status=BatchStatus.COMPLETED, output_file_id=f"{batch_id}-output",
                                 completed=len(held.lines))
        return held.batch

    async def lines(self, batch: ProviderBatch) -> Iterator[bytes]:
        """Its answers, once completed."""
        held = self._batches.get(batch.id)
        return iter(held.lines if held is not None and batch.status is BatchStatus.COMPLETED else [])

    async def cancel(self, batch_id: str) -> None:
        """Cancelled unless it completed."""
        held = self._batches.get(batch_id)
        if held is not None and held.batch.status is BatchStatus.IN_PROGRESS:
            held.batch = replace(held.batch, status=BatchStatus.CANCELLED)

    async def clean_up(self, batch: ProviderBatch) -> None:
        """Forgotten."""
        self._batches.pop(batch.id, None)

    async def aclose(self) -> None:
        """Nothing to release."""


def _lines_of(files: list[BinaryIO]) -> Iterator[bytes]:
    """The non-blank lines of the files, in order, each file closed once read."""
    for file in files:
        with file:
            file.seek(0)
            yield from (line for line in file if line.strip())


def batch_provider(deployment: Deployment, *, config: GatewayConfig, api_key: str | None,
                   transport: httpx.AsyncBaseTransport | None = None) -> BatchProvider:
    """The batch endpoint of a deployment that declares `batch`."""
    assert deployment.batch is not None
    if deployment.provider == "mock":
        return MockBatches(deployment)
    assert deployment.channel is not None
    channel = config.channels[deployment.channel]
    base = deployment.batch.base_url or channel.base_url.rstrip("/") + "/v1"
    return OpenAIBatches(BatchApi(base, api_key=api_key, name=deployment.name, timeout_s=channel.timeout,
                                  transport=transport), window=deployment.batch.window)


class BatchDeployments:
    """The gateway's deployments that take batches, and their providers (each made on first use)."""

    def __init__(self, config: GatewayConfig, *, env: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.transport = transport
        self._env = env
        self._keys: dict[str, str | None] | None = None
        self._providers: dict[str, BatchProvider] = {}
        self._by_name = {d.name: d for d in config.models}

    def for_model(self, model: str) -> Deployment | None:
        """The first deployment a request for `model` (a name, a group or `auto`) may use that takes batches."""
        return next((d for d in self.config.members(model) if d.batch is not None), None)

    def in_process(self, name: str) -> bool:
        """Whether the deployment's batches live in this process (the mock's): a run that sends them cannot leave
        the process while they are out."""
        return self._by_name[name].provider == "mock"

    def __getitem__(self, name: str) -> Deployment:
        return self._by_name[name]

    def body(self, name: str, request: ChatRequest) -> dict[str, Any]:
        """The request's body as the deployment is sent it (its own model name, what it does not support dropped)."""
        deployment = self._by_name[name]
        return adapt_request(deployment, request).body(model=deployment.model)

    def provider(self, name: str) -> BatchProvider:
        """The deployment's batch endpoint."""
        if name not in self._providers:
            if self._keys is None:
                self._keys = resolve_secrets(self.config, self._env)
            self._providers[name] = batch_provider(self._by_name[name], config=self.config,
                                                   api_key=self._keys[name], transport=self.transport)
        return self._providers[name]

    async def aclose(self) -> None:
        """Every provider's connections closed."""
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
