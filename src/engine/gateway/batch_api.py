"""A provider's batch API in OpenAI's shape: upload a JSONL file of requests, create a batch of it, poll it,
read its output and error files, cancel it, delete its files.

Each line of the input is `{"custom_id", "method": "POST", "url", "body"}`; each line of the output is
`{"custom_id", "response": {"status_code", "body"}, "error"}`. Failures map onto the gateway's exception tree,
as a live request's do.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

import httpx
import orjson

from engine.gateway.errors import MalformedResponse
from engine.gateway.openai_client import raise_for_status, transport_errors
from engine.gateway.transport import UpstreamReply, UpstreamTransport

DEFAULT_WINDOW = "24h"
CHAT_URL = "/v1/chat/completions"  # the endpoints a batch's lines go to (one endpoint a batch)
EMBEDDINGS_URL = "/v1/embeddings"


class BatchStatus(StrEnum):
    """A provider batch's status, as OpenAI names them."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ENDED = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED})


@dataclass(frozen=True)
class ProviderBatch:
    """What the provider says of a batch: its status, its files and its counts."""

    id: str
    status: BatchStatus
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def ended(self) -> bool:
        """Whether the provider is done with it (completed, failed, expired or cancelled)."""
        return self.status in ENDED

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ProviderBatch:
        """From a batch object."""
        counts = body.get("request_counts") or {}
        return cls(id=str(body["id"]), status=BatchStatus(body["status"]), input_file_id=str(body["input_file_id"]),
                   output_file_id=body.get("output_file_id"), error_file_id=body.get("error_file_id"),
                   total=int(counts.get("total") or 0), completed=int(counts.get("completed") or 0),
                   failed=int(counts.get("failed") or 0))


def request_line(custom_id: str, body: Mapping[str, Any], *, url: str = CHAT_URL) -> bytes:
    """One line of a batch's input file."""
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}) + b"\n"


class BatchApi:
    """The Files and Batches endpoints under `base_url` (e.g. `https://api.openai.com/v1`); `transport` can be
    injected (default: aiohttp's, as live requests use)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, name: str = "batch", timeout_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name  # the deployment, as errors name it
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s,
                                       transport=transport or UpstreamTransport(max_connections=8))

    async def upload(self, content: bytes | BinaryIO, *, filename: str) -> str:
        """Upload a JSONL input file (purpose `batch`), its bytes or a file read as it is sent; its file id."""
        reply = await self._send("POST", "files", data={"purpose": "batch"},
                                 files={"file": (filename, content, "application/jsonl")})
        return str(self._json(reply)["id"])

    async def create(self, input_file_id: str, *, endpoint: str = CHAT_URL,
                     window: str = DEFAULT_WINDOW, metadata: Mapping[str, str] | None = None) -> ProviderBatch:
        """Start a batch of an uploaded file."""
        body: dict[str, Any] = {"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": window}
        if metadata:
            body["metadata"] = dict(metadata)
        return ProviderBatch.of(self._json(await self._send("POST", "batches", json=body)))

    async def get(self, batch_id: str) -> ProviderBatch:
        """The batch as the provider sees it now."""
        return ProviderBatch.of(self._json(await self._send("GET", f"batches/{batch_id}")))

    async def find(self, key: str, value: str, *, pages: int = 100) -> ProviderBatch | None:
        """The newest batch whose metadata has `key: value`, looking through the provider's list page by page (at
        most `pages` of 100): a batch created just before a crash is found again instead of created twice."""
        after: str | None = None
        for _ in range(pages):
            params = {"limit": "100", **({"after": after} if after else {})}
            page = self._json(await self._send("GET", "batches", params=params))
            batches = page.get("data") or []
            for body in batches:
                if (body.get("metadata") or {}).get(key) == value:
                    return ProviderBatch.of(body)
            if not page.get("has_more") or not batches:
                return None
            after = str(batches[-1]["id"])
        return None

    async def cancel(self, batch_id: str) -> ProviderBatch:
        """Ask the provider to stop the batch (it keeps the lines it finished)."""
        return ProviderBatch.of(self._json(await self._send("POST", f"batches/{batch_id}/cancel")))

    async def content(self, file_id: str) -> bytes:
        """A file's bytes (an output or error file: JSONL)."""
        buffer = io.BytesIO()
        await self.save(file_id, buffer)
        return buffer.getvalue()

    async def save(self, file_id: str, into: BinaryIO) -> None:
        """A file's bytes written to `into` as they arrive (an output file may be larger than memory allows)."""
        with transport_errors(self.name, self.timeout_s):
            async with self._http.stream("GET", f"files/{file_id}/content") as response:
                if response.status_code >= 400:
                    reply = UpstreamReply(response.status_code, response.headers, await response.aread())
                    raise_for_status(reply, self.name)
                async for chunk in response.aiter_raw():
                    into.write(chunk)

    async def delete_file(self, file_id: str) -> None:
        """Delete a file; one already gone is no error."""
        try:
            await self._send("DELETE", f"files/{file_id}")
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> UpstreamReply:
        with transport_errors(self.name, self.timeout_s):
            response = await self._http.request(method, path, **kwargs)
        reply = UpstreamReply(response.status_code, response.headers, response.content)
        raise_for_status(reply, self.name)
        return reply

    def _json(self, reply: UpstreamReply) -> dict[str, Any]:
        try:
            body = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise MalformedResponse(f"{self.name}: not a JSON object: {reply.text[:200]}", model=self.name)
        return body
