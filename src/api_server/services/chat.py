"""Chat completions through the gateway: OpenAI's request shape, the caller's key limits and budgets, the answer.

Shared by the documented `/v1/chat/completions` route and the middleware that answers plain requests first.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api_server.auth import Caller
from api_server.key_limits import KeyLimits
from core.budgets.client import BudgetedClient
from core.budgets.guard import BudgetGuard
from core.budgets.windows import subjects_of
from engine.gateway import ChatRequest, ChatResult, Router


class ChatMessage(BaseModel):
    """One message; content parts (OpenAI's list form) are joined as text."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request (fields the router does not use are accepted and ignored)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "auto", "messages": [{"role": "user", "content": "Reply with a JSON object: {\"ok\": true}"}]}]})
    model: str = Field(min_length=1, description="A model, a group, or auto.")
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2, strict=True)  # strict: `false` is no temperature
    max_tokens: int | None = Field(None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, strict=True)
    response_format: dict[str, Any] | None = None
    stream: bool = Field(False, strict=True)

    def to_request(self) -> ChatRequest:
        """The router's request."""
        return ChatRequest(model=self.model, messages=[{"role": m.role, "content": m.text()} for m in self.messages],
                           temperature=self.temperature, max_tokens=self.max_tokens or self.max_completion_tokens,
                           response_format=self.response_format)


def budgeted(gateway: Router, budgets: BudgetGuard, caller: Caller) -> BudgetedClient:
    """The router within the budgets of the platform and the caller's key."""
    return BudgetedClient(gateway, budgets, subjects_of(key_id=caller.key_id))


async def answer(request: ChatRequest, *, caller: Caller, limits: KeyLimits, gateway: Router,
                 budgets: BudgetGuard) -> ChatResult:
    """A completion within the caller's key limits (TooManyRequests if over them) and budgets (BudgetExceeded);
    GatewayError as the router's."""
    admission = await limits.admit(caller, request.estimated_tokens())
    result = await budgeted(gateway, budgets, caller).chat(request)
    await limits.settle(caller, admission, result.usage.prompt_tokens + result.usage.completion_tokens)
    return result


def completion_body(result: ChatResult) -> dict[str, Any]:
    """A chat.completion object."""
    usage = result.usage
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": result.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.prompt_tokens + usage.completion_tokens}}
