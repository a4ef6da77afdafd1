"""The reference of every field of a workflow spec and of a gateway config, made from their pydantic models.

    python -m engine.reference docs/     # writes spec.md, workflow.schema.json, gateway.schema.json

A test checks that the files in docs/ are what this writes, so the reference never falls behind the models.
"""

from __future__ import annotations

import json
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from engine.gateway.config import GatewayConfig
from engine.spec.connections import ConnectionsConfig
from engine.spec.models import WorkflowSpec

ROOTS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("Workflow spec", WorkflowSpec, "workflow"),
    ("Gateway config", GatewayConfig, "gateway"),
    ("Connections file", ConnectionsConfig, "connections"),
)
INTRO = """# Workflow, gateway and connections reference

Every field of a workflow spec (the YAML stored as a workflow version, or run by `rowloom run`), of a gateway
config (`GATEWAY_CONFIG`, `rowloom run --gateway`) and of the operator's database connections (`CONNECTIONS_FILE`,
`rowloom run --connections`). Generated from the models by `python -m engine.reference docs/`;
a test keeps it current. Unknown fields are errors, reported with their line and column.

Editors that use yaml-language-server validate and complete specs with the JSON Schemas beside this file
(`docs/workflow.schema.json`, `docs/gateway.schema.json`, also served at `/api/v1/schemas/workflow` and
`/api/v1/schemas/gateway`): put this line at the top of a file:

    # yaml-language-server: $schema=http://127.0.0.1:8000/api/v1/schemas/workflow
"""


def json_schema(root: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a spec or config, as editors use it."""
    schema = root.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def markdown() -> str:
    """The whole reference, in Markdown."""
    parts = [INTRO]
    for title, root, _ in ROOTS:
        parts.append(f"\n## {title}\n")
        for model in _models(root):
            parts.append(_section(model, root))
    return "".join(parts)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """The root and every model under it, in the order a reader meets them."""
    found: list[type[BaseModel]] = []
    pending = [root]
    while pending:
        model = pending.pop(0)
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            pending += [m for m in _nested(field.annotation) if m not in found]
    return found


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _nested(arg)]


def _section(model: type[BaseModel], root: type[BaseModel]) -> str:
    name = _title(model, root)
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    rows = "".join(f"| `{field}` | {_type(info.annotation, root)} | {_default(info)} | {_text(info.description)} |\n"
                   for field, info in model.model_fields.items())
    return f"\n### {name}\n\n{doc}\n\n| field | type | default | meaning |\n|---|---|---|---|\n{rows}"


def _title(model: type[BaseModel], root: type[BaseModel]) -> str:
    return "The whole document" if model is root else model.__name__.removesuffix("Spec").lstrip("_")


def _anchor(model: type[BaseModel], root: type[BaseModel]) -> str:
    return _title(model, root).lower().replace(" ", "-")


def _type(annotation: Any, root: type[BaseModel]) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type(get_args(annotation)[0], root)
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(_type(a, root) for a in members)
        return f"{text} (optional)" if len(members) < len(get_args(annotation)) else text
    if origin is list:
        return f"list of {_type(get_args(annotation)[0], root)}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type(key, root)} to {_type(value, root)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{_title(annotation, root)}](#{_anchor(annotation, root)})"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " or ".join(f"`{member.value}`" for member in annotation)
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(annotation, f"{annotation}")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(its defaults)"
        return f"`{json.dumps(value)}`"
    if info.default is PydanticUndefined:
        return "required"
    value = info.default.value if isinstance(info.default, Enum) else info.default
    return f"`{json.dumps(value)}`"


def _text(description: str | None) -> str:
    return (description or "").replace("|", "\\|").replace("\n", " ")


def write(folder: Path) -> list[Path]:
    """Write the reference and the schemas into `folder`; returns the files written."""
    written = [folder / "spec.md"]
    written[0].write_text(markdown(), encoding="utf-8")
    for _, root, name in ROOTS:
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(json_schema(root), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(f"wrote {written_path}")
