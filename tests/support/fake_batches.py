"""OpenAI's Files and Batches endpoints for the fake upstream: a batch's lines are answered as live requests
with the same bodies would be (the same faults drawn), once the batch's delay has passed."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fake_upstream import FakeUpstream

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class BatchStats:
    """What the batch endpoints saw."""

    files_uploaded: int = 0
    uploaded_bytes: list[int] = field(default_factory=list)  # each input file's size
    files_deleted: int = 0
    batches_created: int = 0
    batches_cancelled: int = 0
    lines: int = 0  # batch lines answered
    custom_ids: list[str] = field(default_factory=list)  # every line submitted, in order


class FakeBatches:
    """Files by id, batches by id; `delay_s` before a batch is answered, `expire` to end batches `expired` with
    only their first half answered."""

    def __init__(self, upstream: FakeUpstream, *, delay_s: float = 0.0, expire: bool = False) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.expire = expire
        self.stats = BatchStats()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    async def route(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        """Answer one request to /v1/files... or /v1/batches..."""
        parts = path.split("?")[0].strip("/").split("/")[1:]  # after "v1"
        if parts == ["files"] and method == "POST":
            return self._upload(body, headers.get("content-type", ""))
        if parts[0] == "files" and len(parts) >= 2:
            return self._file(method, parts[1], content=parts[2:] == ["content"])
        if parts == ["batches"] and method == "POST":
            return self._create(json.loads(body))
        if parts == ["batches"] and method == "GET":
            return self._list(path)
        if parts[0] == "batches" and len(parts) >= 2 and parts[1] in self.batches:
            batch = self.batches[parts[1]]
            if parts[2:] == ["cancel"] and method == "POST":
                self.stats.batches_cancelled += batch["status"] not in ("completed", "expired", "cancelled")
                batch["status"] = "cancelled" if batch["status"] != "completed" else batch["status"]
                return 200, self._shown(batch), {}
            await self._advance(batch)
            return 200, self._shown(batch), {}
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}

    def _upload(self, body: bytes, content_type: str) -> Reply:
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        content = next(part.get_payload(decode=True) for part in message.iter_parts()
                       if part.get_param("name", header="content-disposition") == "file")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = content
        self.stats.files_uploaded += 1
        self.stats.uploaded_bytes.append(len(content))
        return 200, {"id": file_id, "object": "file", "bytes": len(content), "purpose": "batch"}, {}

    def _file(self, method: str, file_id: str, *, content: bool) -> Reply:
        if file_id not in self.files:
            return 404, {"error": {"message": f"no file {file_id}"}}, {}
        if method == "DELETE":
            del self.files[file_id]
            self.stats.files_deleted += 1
            return 200, {"id": file_id, "object": "file", "deleted": True}, {}
        if content:
            return 200, self.files[file_id], {}
        return 200, {"id": file_id, "object": "file", "bytes": len(self.files[file_id])}, {}

    def _create(self, request: dict[str, Any]) -> Reply:
        file_id = request.get("input_file_id", "")
        if file_id not in self.files:
            return 400, {"error": {"message": f"no file {file_id}"}}, {}
        lines = [json.loads(line) for line in self.files[file_id].splitlines() if line.strip()]
        self.stats.custom_ids += [line["custom_id"] for line in lines]
        self.stats.batches_created += 1
        batch_id = f"batch-{next(self._ids)}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": request.get("endpoint"), "input_file_id": file_id,
            "completion_window": request.get("completion_window"), "status": "in_progress",
            "metadata": request.get("metadata") or {},
            "output_file_id": None, "error_file_id": None, "_lines": lines,
            "errors": None if all(line.get("url") == request.get("endpoint") for line in lines) and
            len({line["custom_id"] for line in lines}) == len(lines) else
            {"data": [{"message": "a line's url is not the batch's endpoint, or a custom_id is not unique"}]},
            "_ready_at": time.monotonic() + self.delay_s,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        return 200, self._shown(self.batches[batch_id]), {}

    def _list(self, path: str) -> Reply:
        """Newest first, `limit` a page, from after the batch `after` names (OpenAI's paging)."""
        query = dict(pair.split("=", 1) for pair in path.partition("?")[2].split("&") if "=" in pair)
        newest = [self._shown(b) for b in reversed(self.batches.values())]
        start = next((i + 1 for i, b in enumerate(newest) if b["id"] == query.get("after")), 0)
        limit = int(query.get("limit", "20"))
        page = newest[start:start + limit]
        return 200, {"object": "list", "data": page, "has_more": start + limit < len(newest)}, {}

    async def _advance(self, batch: dict[str, Any]) -> None:
        """Answer the batch's lines once its delay has passed (an expiring batch only its first half)."""
        if batch["status"] != "in_progress" or time.monotonic() < batch["_ready_at"]:
            return
        if batch["errors"]:  # as OpenAI: a file that does not validate fails the batch, with no line answered
            batch["status"] = "failed"
            return
        lines = batch["_lines"]
        answered = lines[: len(lines) // 2] if self.expire else lines
        output, errors = [], []
        for line in answered:
            status, body = await self.upstream.answer_line(line["body"], line["url"])
            self.stats.lines += 1
            record = {"id": f"response-{next(self._ids)}", "custom_id": line["custom_id"],
                      "response": {"status_code": status, "body": body}, "error": None}
            (output if status == 200 else errors).append(json.dumps(record).encode())
        for name, records in (("output_file_id", output), ("error_file_id", errors)):
            if records:
                file_id = f"file-{next(self._ids)}"
                self.files[file_id] = b"\n".join(records) + b"\n"
                batch[name] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(output), "failed": len(errors)}
        batch["status"] = "expired" if self.expire else "completed"

    @staticmethod
    def _shown(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}
