"""What a prompt asks and how: the template, the answer's fields and types, the model, retries."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field

from engine.spec.base import StrictModel


class FieldType(StrEnum):
    """A JSON type an answer field must have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


MAX_TEMPLATE = 100_000  # characters of a prompt's template or system message


class Prompt(StrictModel):
    """What each row asks, and what its answer must be."""

    system: str = Field("", max_length=MAX_TEMPLATE, description="The system message sent before each row's prompt "
                                                                 "(none if empty).")
    template: str = Field(min_length=1, max_length=MAX_TEMPLATE,
                          description="Uses {record_json} and {column} placeholders.")
    required_fields: list[str] = Field(default_factory=list,
                                       description="Answer fields that must be present and non-empty; default: every "
                                                   "output field.")
    types: dict[str, FieldType] = Field(default_factory=dict, description="Answer field -> JSON type.")
    json_schema: bool = Field(True, description="Send a JSON schema as response_format when supported.")


class ModelChoice(StrictModel):
    """The model that answers, and a fallback."""

    name: str = Field("auto", min_length=1, description="A model, a group, or auto.")
    temperature: float | None = Field(None, ge=0, le=2,
                                      description="Sampling temperature; unset: the model's (or its gateway entry's) "
                                                  "default.")
    max_tokens: int | None = Field(None, ge=1, description="Longest answer, in tokens; unset: the model's default.")
    fallback: str | None = Field(None, description="Model or group used after fallback_after content errors.")
    fallback_after: int = Field(2, ge=1,
                                description="Content errors of a row before it is asked of the fallback model.")


class Retry(StrictModel):
    """Retries of a row, by kind of error."""

    api_error: int = Field(3, ge=0, le=100,
                           description="Retries of a row after upstream failures (timeouts, 429, 5xx, malformed "
                                       "answers).")
    content_error: int = Field(1, ge=0, le=100,
                               description="Times a row is asked again after an answer that breaks the contract (with "
                                           "the reason).")
    system_error: int = Field(2, ge=0, le=100,
                              description="Retries of a row after an unexpected error on Rowloom's side.")


class RunMode(StrEnum):
    """How a step's requests are sent: one by one as rows come (`live`), in provider batches at the batch price
    (`batch`), or in batches when a deployment takes them and the deadline leaves time (`auto`)."""

    LIVE = "live"
    BATCH = "batch"
    AUTO = "auto"


STEP_MODE = "`live`, `batch` or `auto` for this step's requests; unset: the workflow's `mode`."

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(value: Any) -> Any:
    """Seconds from a number or a text such as `90m`, `6h`, `2d` (other values are left to the field's checks)."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value

