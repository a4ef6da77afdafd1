"""The model gateway: what the engine calls to get an answer, the router behind it, and its config.

The engine depends only on `ChatClient` and the exception tree in `errors`; the router (many deployments,
weights, limits, cool-downs) implements the same interface. This module is the gateway's door: what the platform
may use is named here. The request types and errors load with it; the rest on first use (`engine.exports`).
"""

from typing import TYPE_CHECKING

from engine.exports import lazy_exports
from engine.gateway.errors import (
    BudgetExceeded,
    Deferred,
    GatewayError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    Unsent,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from engine.gateway.types import ChatClient, ChatDelta, ChatRequest, ChatResult, EmbeddingResult, Usage, estimate_tokens

if TYPE_CHECKING:
    from engine.gateway.batch_providers import BatchDeployments
    from engine.gateway.capacity import SharedCapacity, SharedLevels
    from engine.gateway.config import BatchSupport, Deployment, GatewayConfig, load_gateway
    from engine.gateway.limits import (
        EXPIRY_EPSILON_S,
        REQUEST_WINDOW_S,
        TOKEN_WINDOW_S,
        WINDOW_MARGIN_S,
        SlidingWindow,
        WindowEntry,
    )
    from engine.gateway.mock import MockClient
    from engine.gateway.openai_client import OpenAIClient
    from engine.gateway.router import DeploymentState, Router, usage_total

# Where each name loaded on first use comes from, by module.
_FROM = {
    # the router and its config
    "engine.gateway.router": "DeploymentState Router usage_total",
    "engine.gateway.config": "Deployment GatewayConfig load_gateway BatchSupport",
    # clients of one upstream
    "engine.gateway.openai_client": "OpenAIClient",
    "engine.gateway.mock": "MockClient",
    # limits shared between processes: the protocol a shared store implements, and the windows it keeps
    "engine.gateway.capacity": "SharedCapacity SharedLevels",
    "engine.gateway.limits": ("EXPIRY_EPSILON_S REQUEST_WINDOW_S TOKEN_WINDOW_S "
                              "WINDOW_MARGIN_S SlidingWindow WindowEntry"),
    "engine.gateway.batch_providers": "BatchDeployments",
}
__all__ = [
    "EXPIRY_EPSILON_S", "REQUEST_WINDOW_S", "TOKEN_WINDOW_S", "WINDOW_MARGIN_S", "BatchDeployments", "BatchSupport",
    "BudgetExceeded", "ChatClient", "ChatDelta", "ChatRequest", "ChatResult", "Deferred", "Deployment",
    "DeploymentState", "EmbeddingResult", "GatewayConfig", "GatewayError", "MalformedResponse", "MockClient",
    "OpenAIClient", "RateLimited", "RequestRejected", "Router", "SharedCapacity", "SharedLevels", "SlidingWindow",
    "Unsent", "UpstreamConnectionError", "UpstreamError", "UpstreamTimeout", "UpstreamUnavailable", "Usage",
    "WindowEntry", "estimate_tokens", "load_gateway", "usage_total",
]
__getattr__, __dir__ = lazy_exports(__name__, _FROM, globals())
