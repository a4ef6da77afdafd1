"""The gateway's hot path: a plain chat completion goes straight from the ASGI call to the router.

FastAPI's routing, dependency solving, exception middleware and response encoding cost more CPU than the
rest of a gateway request together (profiled under loadprobe). This middleware answers valid,
non-streaming `POST /v1/chat/completions` itself, with the same key check, key limits, models and response
builders as the documented route; anything else (streams, invalid bodies, other content types) falls through to that
route with the body replayed, so errors keep the API's one shape and Swagger still documents it.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from api_server.auth import KeyRing, authorize
from api_server.deps import budget_guard
from api_server.http_errors import domain_error_response, gateway_error
from api_server.key_limits import KeyLimits
from api_server.services.chat import ChatCompletionRequest, answer, completion_body
from api_server.services.errors import DomainError
from core.models import Scope
from engine.gateway import GatewayError, Router

PATH = "/v1/chat/completions"


class ChatFastPath:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH or not _json(scope):
            await self.app(scope, receive, send)
            return
        body, messages = await _read(receive)
        try:
            request = ChatCompletionRequest.model_validate_json(body)
        except ValidationError:
            request = None
        if request is None or request.stream:
            await self.app(scope, _replay(messages, receive), send)
            return
        state = scope["app"].state
        keys: KeyRing = state.keys
        limits: KeyLimits = state.key_limits
        router: Router = state.router
        try:
            caller = authorize(await keys.caller(_header(scope, b"authorization")), Scope.GATEWAY)
            result = await answer(request.to_request(), caller=caller, limits=limits, gateway=router,
                                  budgets=budget_guard(scope["app"]))
        except DomainError as exc:  # no key, a key without the gateway scope, or over its limits
            await domain_error_response(exc)(scope, receive, send)
            return
        except GatewayError as exc:
            await gateway_error(exc)(scope, receive, send)
            return
        await JSONResponse(completion_body(result))(scope, receive, send)


def _header(scope: AsgiScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _json(scope: AsgiScope) -> bool:
    content_type = _header(scope, b"content-type")
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


async def _read(receive: Receive) -> tuple[bytes, list[Message]]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay
