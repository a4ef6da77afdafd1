"""One JSON error shape for every 4xx and 5xx, and the map from domain errors to HTTP statuses."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from api_server.services.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    OverBudget,
    TooManyRequests,
    Unauthenticated,
)
from core.db.retry import DatabaseUnavailable
from core.outages import outage_of
from engine import ErrorDetail
from engine.gateway import BudgetExceeded, GatewayError, RateLimited, RequestRejected

log = logging.getLogger(__name__)

STATUS_OF: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, InvalidInput: 422, Unauthenticated: 401,
                                            Forbidden: 403, TooManyRequests: 429,
                                            OverBudget: 429}


class ErrorBody(BaseModel):
    """What went wrong."""

    status: int
    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorBody


def error_response(status: int, code: str, message: str, *, field: str | None = None,
                   details: list[ErrorDetail] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Build the one error shape."""
    body = ErrorBody(status=status, code=code, message=message, field=field,
                     details=details or [])
    return JSONResponse({"error": body.model_dump(exclude_none=True)}, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting error statuses with the error shape."""
    text = {400: "Bad request", 401: "No API key, or an unknown or revoked one", 403: "The API key lacks the scope",
            404: "Not found", 409: "Conflict with the resource's state",
            413: "Request body too large", 415: "Unsupported media type", 422: "Invalid input",
            429: "A limit of the API key is reached, or a budget has no room (see Retry-After)",
            503: "The database or Redis is unreachable; try again (see Retry-After)"}
    # The content type is named: a route that answers another type (a file, a stream) still errs in JSON.
    return {s: {"model": ErrorResponse, "description": text.get(s, "Error"), "content": {"application/json": {}}}
            for s in statuses}


def _validation_detail(err: dict[str, Any]) -> ErrorDetail:
    where, *path = err["loc"] or ("body",)
    name = ".".join(str(p) for p in path) or str(where)
    if err["type"] == "extra_forbidden":
        noun = {"query": "query parameter", "body": "field"}.get(str(where), "field")
        return ErrorDetail(name, f"unknown {noun} {name!r}")
    if err["type"] == "json_invalid":
        return ErrorDetail("body", f"body is not valid JSON: {err.get('ctx', {}).get('error', '')}")
    noun = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(str(where), "field")
    return ErrorDetail(name, f"{noun} {name!r}: {err['msg']}")


def domain_error_response(exc: DomainError) -> JSONResponse:
    """A domain error as its HTTP status, with the headers that status calls for."""
    status = next((s for cls, s in STATUS_OF.items() if isinstance(exc, cls)), 400)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, TooManyRequests | OverBudget) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return error_response(status, exc.code, exc.message, field=exc.field, details=exc.details, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers so no route returns another shape and no stack trace leaks."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [_validation_detail(dict(e)) for e in exc.errors()]
        message = "; ".join(d.message for d in details) or "invalid request"
        return error_response(422, "invalid", message, field=details[0].field if details else None,
                              details=details)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bytes that are no JSON (or no UTF-8)
            return error_response(422, "invalid", "body is not valid JSON", field="body",
                                  details=[ErrorDetail("body", "body is not valid JSON")])
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large",
                415: "unsupported_media_type"}.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), field="body" if exc.status_code == 413 else None,
                              headers=dict(exc.headers) if exc.headers else None)

    async def _dependency(request: Request, exc: Exception) -> JSONResponse:
        if (outage := outage_of(exc)) is not None:  # logged once for the process, not once a request
            outage.failed(exc)
            return error_response(503, "unavailable", f"{outage.name} is unreachable; try again shortly",
                                  headers={"Retry-After": "1"})
        return _internal(request)

    # Registered by class, not under Exception: Starlette re-raises what reaches its last-resort handler (so
    # the server logs a stack trace for every request of an outage).
    for error in (DBAPIError, DatabaseUnavailable, RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(error, _dependency)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request)


def _internal(request: Request) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal server error; the server log has the details")


def gateway_error(exc: GatewayError) -> JSONResponse:
    """The router's error as an HTTP error (429 with Retry-After when every deployment is busy or a budget is
    spent)."""
    if isinstance(exc, BudgetExceeded):
        wait = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))} if exc.retry_after_s else None
        return error_response(429, "over_budget", str(exc), field="budget", headers=wait)
    if isinstance(exc, RateLimited):
        seconds = max(1, round(exc.retry_after_s or 1))
        return error_response(429, "rate_limited", str(exc), headers={"Retry-After": str(seconds)})
    if isinstance(exc, RequestRejected):
        return error_response(exc.status or 400, "upstream_rejected", str(exc))
    return error_response(502, "upstream_error", str(exc))
