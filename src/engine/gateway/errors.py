"""The gateway's exception tree, a branch of `engine.errors.EngineError`. Retries are decided by class, never
by message.

    GatewayError
    ├── UpstreamError            retryable: the upstream failed, not the request
    │   ├── RateLimited          429 (retry_after_s from Retry-After when given)
    │   ├── UpstreamUnavailable  5xx, or no deployment had capacity in time
    │   ├── UpstreamTimeout      no answer within the timeout
    │   ├── UpstreamConnectionError
    │   └── MalformedResponse    2xx whose body is not a chat completion
    ├── RequestRejected          4xx caused by the request itself (400, 401, 404, 422): never retried
    └── BudgetExceeded           a budget has no room for the request: not sent (the run pauses)
"""

from __future__ import annotations

from engine.errors import EngineError


class GatewayError(EngineError):
    """Base of every error a ChatClient raises."""

    replayed = False  # an upstream's reply returned in a provider batch, not one to a request just sent

    def __init__(self, message: str, *, status: int | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.model = model


class UpstreamError(GatewayError):
    """A failure of the upstream; the same request may succeed later."""

    def __init__(self, message: str, *, status: int | None = None, model: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, status=status, model=model)
        self.retry_after_s = retry_after_s


class RateLimited(UpstreamError):
    """429 Too Many Requests."""


class UpstreamUnavailable(UpstreamError):
    """5xx, or no deployment could take the request in time."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached."""


class MalformedResponse(UpstreamError):
    """A success status whose body is not a usable chat completion."""


class RequestRejected(GatewayError):
    """The upstream refused the request itself (400, 401, 404, 422); sending it again will not help."""


class Unsent(GatewayError):
    """The request was not sent, and it is not the row's failure: the row stops unsent and goes on later."""


class Deferred(Unsent):
    """The request waits for a provider batch (a step in batch mode): its row goes on once the batch ends."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class BudgetExceeded(Unsent):
    """A spending budget has no room for the request's maximum cost; it was not sent.

    `details` says which budget (scope, target, period), what is spent of its limit, what the request needed and
    when the budget resets (ISO time, None for a total budget); `retry_after_s` is the time until then.
    """

    def __init__(self, message: str, *, details: dict[str, object], retry_after_s: float | None = None) -> None:
        super().__init__(message, status=429)
        self.details = details
        self.retry_after_s = retry_after_s
