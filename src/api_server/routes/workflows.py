"""/api/v1/workflows: versioned workflow definitions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api_server.auth import AdminKey, ReadKey, WriteKey
from api_server.deps import SessionDep, SpecChecksDep
from api_server.http_errors import error_responses
from api_server.query_params import ListPage, NoQueryDep, VersionNumber, WorkflowListQuery
from api_server.routes._paging import list_page, page_request
from api_server.services import workflows as service
from api_server.services.errors import InvalidInput
from core.models.workflow import (
    NAME_PATTERN,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowUpdate,
    WorkflowVersionPublic,
    WorkflowVersionResult,
    WorkflowVersionSummary,
    WorkflowVersionUpdate,
)

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=error_responses(401, 403))

# Not text/plain: a browser sends that cross-site without asking, and nothing here should be writable that way.
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
EXAMPLE_YAML = """# Classify support tickets
name: ticket-triage
source: {kind: csv, path: tickets.csv, key: id}
columns:
  input: [subject, body]
  output: {category: ai_category}
prompt:
  system: You are a support analyst.
  template: "Classify this ticket: {record_json}"
  required_fields: [category]
validation: {category: [technical, business, general]}
sink: {kind: csv, path: out/tickets.csv}
"""


class YamlUploadQuery(BaseModel):
    """Query of a raw-YAML upload."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Defaults to the spec's `name`.")


class VersionQuery(BaseModel):
    """Query of GET one version."""

    model_config = ConfigDict(extra="forbid")
    format: str | None = Field(None, pattern="^(json|yaml)$",
                               description="`yaml` returns the stored text; default JSON (or by Accept).")


_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": WorkflowCreate.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}, "example": EXAMPLE_YAML},
        },
    }
}


@router.post("", response_model=WorkflowVersionResult, status_code=status.HTTP_201_CREATED,
             openapi_extra=_CREATE_BODY,
             responses={200: {"model": WorkflowVersionResult, "description": "Identical YAML: that version"},
                        **error_responses(413, 415, 422)})
async def create_workflow(request: Request, response: Response, session: SessionDep, caller: WriteKey,
                          checks: SpecChecksDep,
                          query: Annotated[YamlUploadQuery, Query()]) -> WorkflowVersionResult:
    """Store workflow YAML: a new workflow, or its next version.

    Send JSON (`name`, `yaml`, and for a new workflow `description`, `tags`, `is_active`) or the raw YAML
    with `Content-Type: application/yaml` (name from `?name=` or the spec's `name`). The text is stored
    byte for byte (comments too) with its sha256. YAML identical to an existing version returns that
    version with 200; anything new becomes version N+1 with 201. Invalid YAML or spec: 422 naming the
    field, line and column; nothing is stored.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type in YAML_TYPES:
        stored = await service.store_yaml(session, text=_utf8(raw), name=query.name, checks=checks,
                                          created_by=caller.key_id)
    elif content_type in ("application/json", ""):
        if query.name is not None:
            raise InvalidInput("name: with a JSON body, give the name in the body", field="name")
        data = _json_body(raw)
        stored = await service.store_yaml(session, text=data.yaml, name=data.name, meta=data, checks=checks,
                                          created_by=caller.key_id)
    else:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"Content-Type {content_type!r}: send application/json or application/yaml")
    if not stored.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"{router.prefix}/{stored.workflow.id}/versions/{stored.version.version}"
    [workflow] = await service.to_public(session, workflows=[stored.workflow])
    return WorkflowVersionResult(created=stored.created, workflow=workflow,
                                 version=WorkflowVersionPublic.model_validate(stored.version))


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body is not UTF-8 (byte {exc.start})", field="body") from None


def _json_body(raw: bytes) -> WorkflowCreate:
    try:
        return WorkflowCreate.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        if not raw.strip():
            errors = [{"type": "missing", "loc": ("body",), "msg": "a JSON body or YAML body is required"}]
        raise RequestValidationError(errors) from None


@router.get("", response_model=ListPage[WorkflowPublic], responses=error_responses(422))
async def list_workflows(session: SessionDep, _caller: ReadKey,
                         query: Annotated[WorkflowListQuery, Query()]) -> ListPage[WorkflowPublic]:
    """List workflows, filtered and ordered.

    Filters: `name` (contains), `tag` (repeat or comma-separate; all must match), `is_active`,
    `created_after/before`, `updated_after/before`. `order_by`: created_at, updated_at, name, id.
    Page with `limit` + `offset` (returns `total`) or with the `after` cursor from `next`.
    """
    filters = service.WorkflowFilters(
        name=query.name, tags=query.tag, is_active=query.is_active,
        created_after=query.created_after, created_before=query.created_before,
        updated_after=query.updated_after, updated_before=query.updated_before,
    )
    page = await service.list_workflows(session, filters=filters, page=page_request(query, service.ORDERABLE))
    return list_page(page, await service.to_public(session, workflows=page.rows))


@router.get("/{workflow}", response_model=WorkflowPublic, responses=error_responses(404, 422))
async def get_workflow(workflow: str, session: SessionDep, _caller: ReadKey, _: NoQueryDep) -> WorkflowPublic:
    """Get one workflow by id or name."""
    found = await service.get_workflow(session, ref=workflow)
    return (await service.to_public(session, workflows=[found]))[0]


@router.patch("/{workflow}", response_model=WorkflowPublic, responses=error_responses(404, 422))
async def update_workflow(workflow: str, changes: WorkflowUpdate, session: SessionDep, _caller: WriteKey,
                          _: NoQueryDep) -> WorkflowPublic:
    """Edit a workflow's description, tags or is_active. The YAML is immutable: post a new version."""
    updated = await service.update_workflow(session, ref=workflow, changes=changes)
    return (await service.to_public(session, workflows=[updated]))[0]


@router.delete("/{workflow}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
async def delete_workflow(workflow: str, session: SessionDep, _caller: AdminKey, _: NoQueryDep) -> None:
    """Delete a workflow and all its versions. Refused (409) while jobs reference it: deactivate instead."""
    await service.delete_workflow(session, ref=workflow)


@router.get("/{workflow}/versions", response_model=list[WorkflowVersionSummary],
            responses=error_responses(404, 422))
async def list_versions(workflow: str, session: SessionDep, _caller: ReadKey,
                        _: NoQueryDep) -> list[WorkflowVersionSummary]:
    """List a workflow's versions, newest first (without their YAML)."""
    _workflow, versions = await service.list_versions(session, ref=workflow)
    return [WorkflowVersionSummary.model_validate(v) for v in versions]


@router.get("/{workflow}/versions/{version}", response_model=WorkflowVersionPublic,
            responses={200: {"content": {"application/yaml": {"example": EXAMPLE_YAML}},
                             "description": "JSON, or the stored YAML text with ?format=yaml or "
                                            "Accept: application/yaml"},
                       **error_responses(404, 422)})
async def get_version(workflow: str, version: VersionNumber, request: Request, session: SessionDep, _caller: ReadKey,
                      query: Annotated[VersionQuery, Query()]) -> Any:
    """Get one version: JSON with its YAML and parsed spec, or the YAML text exactly as stored."""
    found = await service.get_version(session, workflow=await service.get_workflow(session, ref=workflow),
                                      number=version)
    wants_yaml = query.format == "yaml" or (
        query.format is None and any(t in request.headers.get("accept", "") for t in YAML_TYPES[:4]))
    if wants_yaml:
        return PlainTextResponse(found.yaml, media_type="application/yaml; charset=utf-8",
                                 headers={"ETag": f'"{found.sha256}"'})
    return WorkflowVersionPublic.model_validate(found)


@router.patch("/{workflow}/versions/{version}", response_model=WorkflowVersionSummary,
              responses=error_responses(404, 422))
async def update_version(workflow: str, version: VersionNumber, changes: WorkflowVersionUpdate, session: SessionDep,
                         _caller: WriteKey, _: NoQueryDep) -> WorkflowVersionSummary:
    """Activate or deactivate a version; jobs never start on an inactive version."""
    updated = await service.update_version(session, ref=workflow, number=version, changes=changes)
    return WorkflowVersionSummary.model_validate(updated)


