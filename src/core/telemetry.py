"""Whether OpenTelemetry spans leave this process, and what that turns on (shared by the API and workers)."""

from __future__ import annotations

import os


def exporting() -> bool:
    """Whether spans leave the process (OTEL_TRACES_EXPORTER names an exporter)."""
    return any(name.strip().lower() not in {"", "none"}
               for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","))


def trace_upstream(setting: bool | None) -> bool:
    """Whether to record a span per upstream HTTP call: as set, or when spans are exported."""
    return exporting() if setting is None else setting
