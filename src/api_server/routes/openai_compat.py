"""/v1: the gateway router behind OpenAI's API shapes, so the official `openai` client works unchanged."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api_server.auth import GatewayKey
from api_server.deps import BudgetsDep, KeyLimitsDep, RouterDep
from api_server.http_errors import ErrorResponse, error_responses, gateway_error
from api_server.services.chat import ChatCompletionRequest, answer, budgeted, completion_body
from engine.gateway import ChatDelta, GatewayError, Usage, estimate_tokens

router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=error_responses(401, 403))


UPSTREAM_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A chat.completion; with `stream: true`, chat.completion.chunk server-sent events",
          "content": {"application/json": {}, "text/event-stream": {}}},
    400: {"model": ErrorResponse, "description": "The upstream rejected the request as invalid"},
    404: {"model": ErrorResponse, "description": "No such model or group (the error lists the known ones)"},
}


@router.post("/chat/completions", responses=error_responses(413, 422) | UPSTREAM_ANSWERS | {
    429: {"description": "Every deployment is cooling down or at its limit, or a budget is spent (see "
                 "Retry-After)"},
    502: {"description": "The upstreams failed"}})
async def chat_completions(body: ChatCompletionRequest, gateway: RouterDep, caller: GatewayKey,
                           limits: KeyLimitsDep, budgets: BudgetsDep) -> Any:
    """Create a chat completion through the router (OpenAI-compatible).

    `model` is a model or group name from the gateway config, or `auto`. Parameters a model does not
    support (e.g. `response_format` without JSON-schema support) are dropped for it.
    """
    request = body.to_request()
    if body.stream:
        await limits.admit(caller, request.estimated_tokens())
        pieces = budgeted(gateway, budgets, caller).stream(request)
        try:
            first = await anext(pieces)  # an error before the first piece is a plain HTTP error
        except GatewayError as exc:
            return gateway_error(exc)
        return StreamingResponse(sse(first, pieces), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    try:
        result = await answer(request, caller=caller, limits=limits, gateway=gateway, budgets=budgets)
    except GatewayError as exc:
        return gateway_error(exc)
    return completion_body(result)


async def sse(first: ChatDelta, rest: AsyncIterator[ChatDelta]) -> AsyncIterator[bytes]:
    """chat.completion.chunk events as the upstream's pieces arrive, then `[DONE]`."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": first.model}

    def event(delta: dict[str, Any], finish: str | None = None, usage: Usage | None = None) -> bytes:
        chunk = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage is not None:
            chunk["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                              "total_tokens": usage.prompt_tokens + usage.completion_tokens}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

    yield event({"role": "assistant", "content": first.content})
    usage = first.usage
    try:
        async for piece in rest:
            usage = piece.usage or usage
            if piece.content:
                yield event({"content": piece.content})
    except GatewayError as exc:  # the status line is sent: the error goes in the stream
        yield f"data: {json.dumps({'error': {'message': str(exc), 'code': 'upstream_error'}})}\n\n".encode()
        return
    yield event({}, "stop", usage)
    yield b"data: [DONE]\n\n"


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (a string or a list of strings)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[str] = Field(min_length=1)


@router.post("/embeddings", responses=error_responses(413, 422) | UPSTREAM_ANSWERS | {
    429: {"description": "Every deployment is cooling down or at its limit (see Retry-After)"}})
async def embeddings(body: EmbeddingRequest, gateway: RouterDep, caller: GatewayKey, limits: KeyLimitsDep,
                     budgets: BudgetsDep) -> Any:
    """Create embeddings through the router (OpenAI-compatible)."""
    inputs = [body.input] if isinstance(body.input, str) else body.input
    admission = await limits.admit(caller, estimate_tokens(sum(len(text) for text in inputs)))
    try:
        result = await budgeted(gateway, budgets, caller).embed(inputs, model=body.model)
        await limits.settle(caller, admission, result.usage.prompt_tokens)
    except GatewayError as exc:
        return gateway_error(exc)
    return {"object": "list", "model": result.model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.prompt_tokens}}


@router.get("/models")
async def list_models(gateway: RouterDep, _caller: GatewayKey) -> dict[str, Any]:
    """List the names a request may use: every model, every group, and auto."""
    names = ["auto", *gateway.config.groups, *gateway.deployments]
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "rowloom"}
                                       for name in names]}
