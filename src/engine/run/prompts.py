"""Render a row's prompt: the system text and the template with {record_json} and {column} filled in."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from engine.spec.models import PLACEHOLDER, RECORD_JSON, Prompt


def json_default(value: Any) -> Any:
    """JSON for cell values json cannot encode itself (dates, times, decimals)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


_RECORD_JSON = json.JSONEncoder(ensure_ascii=False, default=json_default)  # one encoder, not one a row


class PromptRenderer:
    """Turns a row's input values into chat messages."""

    def __init__(self, prompt: Prompt) -> None:
        self.system = prompt.system
        self.template = prompt.template
        # Split once: text, placeholder name, text, ... (re.split with one group), instead of scanning the
        # template for every row.
        self._parts = PLACEHOLDER.split(self.template)

    def messages(self, record: dict[str, Any]) -> list[dict[str, str]]:
        """System (if any) and user messages for one row."""
        parts = self._parts
        user = "".join(part if i % 2 == 0 else self._fill(part, record) for i, part in enumerate(parts))
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": user})
        return messages

    @staticmethod
    def _fill(name: str, record: dict[str, Any]) -> str:
        if name == RECORD_JSON:
            return _RECORD_JSON.encode(record)
        value = record.get(name)
        return "" if value is None else json_default(value) if not isinstance(value, str) else value
