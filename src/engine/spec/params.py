"""A job's parameters: overrides merged into its workflow's spec before the spec is validated again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_params(spec: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with a job's overrides merged in (mappings merge key by key, anything else replaces)."""
    merged = dict(spec)
    for key, value in params.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_params(base, value)
        else:
            merged[key] = value
    return merged
