"""Domain errors raised by services; the API maps each class to one HTTP status."""

from __future__ import annotations

from engine import ErrorDetail


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None,
                 details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or []


class NotFound(DomainError):
    """The resource named in the path does not exist."""

    code = "not_found"


class Conflict(DomainError):
    """The request is valid but the resource's state forbids it (illegal transition, in use, ...)."""

    code = "conflict"


class InvalidInput(DomainError):
    """The request names something that does not exist or is not valid (YAML, spec, references)."""

    code = "invalid"


class Unauthenticated(DomainError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """The API key lacks the scope the route needs."""

    code = "forbidden"


class TooManyRequests(DomainError):
    """A limit of the API key is reached; `retry_after_s` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class OverBudget(DomainError):
    """A budget has no room: the message says which, what is spent of its limit, and when it resets."""

    code = "over_budget"

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message, field="budget")
        self.retry_after_s = retry_after_s
