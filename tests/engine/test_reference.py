"""docs/spec.md and the JSON Schemas describe every field of the current models, and the API serves the schemas."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from engine.reference import ROOTS, _models, json_schema, markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_reference_and_schemas_in_docs_are_current() -> None:
    assert (DOCS / "spec.md").read_text(encoding="utf-8") == markdown(), \
        "docs/spec.md is stale: run `python -m engine.reference docs/`"
    for _, root, name in ROOTS:
        stored = json.loads((DOCS / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert stored == json_schema(root), f"docs/{name}.schema.json is stale: run `python -m engine.reference docs/`"


def test_every_field_has_a_description() -> None:
    undescribed = [f"{model.__name__}.{name}" for _, root, _ in ROOTS for model in _models(root)
                   for name, field in model.model_fields.items() if not field.description]
    assert undescribed == []
    reference = markdown()
    for _, root, _ in ROOTS:
        for model in _models(root):
            assert all(f"| `{name}` |" in reference for name in model.model_fields), model.__name__


async def test_the_schemas_are_served_without_a_key(client: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(transport=client._transport, base_url="http://t") as anonymous:
        workflow = await anonymous.get("/api/v1/schemas/workflow")
        gateway = await anonymous.get("/api/v1/schemas/gateway")
        unknown = await anonymous.get("/api/v1/schemas/other")
    assert workflow.status_code == gateway.status_code == 200 and unknown.status_code == 422
    assert workflow.json() == json_schema(ROOTS[0][1]) and gateway.json() == json_schema(ROOTS[1][1])
    assert "source" in workflow.json()["required"] and "models" in gateway.json()["required"]
