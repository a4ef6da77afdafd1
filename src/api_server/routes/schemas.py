"""/api/v1/schemas: the JSON Schemas of a workflow spec, a gateway config and a connections file, for editors.

Public (no key): an editor's `# yaml-language-server: $schema=<url>` line cannot send one, and the schemas say
nothing about what is stored.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from api_server.http_errors import error_responses
from api_server.query_params import NoQueryDep
from engine import ROOTS, json_schema

router = APIRouter(prefix="/api/v1/schemas", tags=["workflows"])
SCHEMAS = {name: json_schema(root) for _, root, name in ROOTS}


@router.get("/{kind}", responses=error_responses(422))
async def get_schema(kind: Literal["workflow", "gateway", "connections"], _: NoQueryDep) -> dict[str, Any]:
    """Get the JSON Schema of a workflow spec, a gateway config or a connections file.

    Editors validate and complete YAML with it: start a file with
    `# yaml-language-server: $schema=http://127.0.0.1:8000/api/v1/schemas/workflow`. docs/spec.md describes
    every field.
    """
    return SCHEMAS[kind]
