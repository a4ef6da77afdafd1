"""The model gateway: what the engine calls to get an answer, and the clients behind it.

The engine depends only on `ChatClient` and the exception tree in `errors`; the router (many deployments,
weights, limits, cool-downs) implements the same interface.
"""

from engine.gateway.errors import (
    BudgetExceeded,
    GatewayError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from engine.gateway.types import ChatClient, ChatDelta, ChatRequest, ChatResult, Usage

__all__ = [
    "BudgetExceeded", "ChatClient", "ChatDelta", "ChatRequest", "ChatResult", "GatewayError", "MalformedResponse",
    "RateLimited",
    "RequestRejected", "UpstreamConnectionError", "UpstreamError", "UpstreamTimeout", "UpstreamUnavailable",
    "Usage",
]
