"""Every error the engine raises on purpose, under one root, and the one shape of a problem's detail.

    EngineError
    ├── SpecError            a workflow or gateway YAML does not parse or is not valid (details with line, column)
    ├── ConfigImportError    an AI-DataFlux config lacks what a workflow needs
    ├── InputError           the input cannot be used (file, sheet, column, key, connection), found before any request
    ├── ContentError         an answer does not meet the contract (asked again, then the row fails)
    ├── UpstreamDown         rows kept failing with API errors and none finished: the run stopped
    └── GatewayError         the model gateway's own tree (engine.gateway.errors): retried or not by class

A caller that runs the engine catches `EngineError` for everything the engine reports with a reason meant
for the user; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One problem: the field (a dotted path, or a query or header name), what is wrong, and for YAML where."""

    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class EngineError(Exception):
    """Base of every error the engine raises on purpose; its message is written for the user."""


class SpecError(EngineError):
    """The YAML does not parse, or it is not a valid workflow spec (or gateway config)."""

    def __init__(self, issues: Sequence[ErrorDetail]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


class ConfigImportError(EngineError):
    """The AI-DataFlux config lacks something the workflow needs."""


class InputError(EngineError):
    """The job's input cannot be used (missing file, sheet, column, key); found before any request."""


class ContentError(EngineError):
    """The answer is not a JSON object that meets the contract; the message says why."""


class UpstreamDown(EngineError):
    """The run stopped because its rows kept failing with API errors (the model is down or refuses the key)."""
