"""Workflow definitions and their immutable versions: tables and API schemas."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, StrictBool, field_validator
from sqlalchemy import JSON, Column, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, LongText, UtcDateTime, utcnow

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9._-]{0,127}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
MAX_TAGS = 32


# --- tables -------------------------------------------------------------------------------------


class Workflow(SQLModel, table=True):
    """A named workflow; its YAML lives in versions."""

    __tablename__ = "workflows"
    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "updated_at", "id"),
        Index(None, "is_active", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    name: str = Field(sa_type=String(128), unique=True)
    description: str = Field(default="", sa_type=String(2000))
    is_active: bool = True
    latest_version: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class WorkflowTag(SQLModel, table=True):
    """One tag of a workflow (a table of its own so that filtering by tag uses an index)."""

    __tablename__ = "workflow_tags"
    __table_args__ = (Index(None, "tag", "workflow_id"),)

    workflow_id: int = Field(
        sa_column=Column(BigIntId, ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True)
    )
    tag: str = Field(sa_type=String(64), primary_key=True)


class WorkflowVersion(SQLModel, table=True):
    """One immutable version: the YAML byte for byte, its parsed spec and its sha256."""

    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version"),
        UniqueConstraint("workflow_id", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    workflow_id: int = Field(
        sa_column=Column(BigIntId, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    )
    version: int
    yaml: str = Field(sa_type=LongText)
    spec: dict[str, Any] = Field(sa_type=JSON)
    sha256: str = Field(sa_type=String(64))
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    created_by: int | None = Field(default=None, sa_type=BigIntId)  # the API key that stored it


# --- API schemas --------------------------------------------------------------------------------


class _Strict(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class WorkflowMeta(_Strict):
    """The editable metadata of a workflow."""

    description: str = Field(default="", max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    is_active: StrictBool = True

    @field_validator("tags")
    @classmethod
    def _tags_are_clean(cls, tags: list[str]) -> list[str]:
        return _clean_tags(tags)


class WorkflowCreate(WorkflowMeta):
    """A new workflow, or a new version of one: its YAML and, for a new workflow, its metadata."""

    name: str | None = Field(
        default=None, regex=NAME_PATTERN, description="Defaults to the spec's `name`."
    )
    yaml: str = Field(min_length=1, description="The workflow spec, stored byte for byte.")

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={"examples": [{
            "name": "ticket-triage",
            "description": "Classify support tickets",
            "tags": ["support"],
            "yaml": "source: {kind: csv, path: tickets.csv, key: id}\n"
                    "columns: {input: [question], output: {category: ai_category}}\n"
                    "prompt:\n  template: 'Classify: {record_json}'\n  required_fields: [category]\n"
                    "validation: {category: [technical, business, general]}\n",
        }]},
    )


class WorkflowUpdate(_Strict):
    """Metadata changes; fields left out stay as they are. The YAML cannot be changed: post a new version."""

    description: str | None = Field(default=None, max_length=2000)
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    is_active: StrictBool | None = None

    @field_validator("tags")
    @classmethod
    def _tags_are_clean(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else _clean_tags(tags)


class WorkflowVersionUpdate(_Strict):
    """A version's one mutable flag: inactive versions are never picked for new jobs."""

    is_active: StrictBool


class WorkflowPublic(SQLModel):
    """A workflow as the API shows it."""

    id: int
    name: str
    description: str
    tags: list[str]
    is_active: bool
    latest_version: int
    created_at: datetime
    updated_at: datetime


class WorkflowVersionSummary(SQLModel):
    """A version without its YAML and spec (for lists)."""

    id: int
    workflow_id: int
    version: int
    sha256: str
    is_active: bool
    created_at: datetime
    created_by: int | None = Field(description="The id of the API key that stored this version.")


class WorkflowVersionPublic(WorkflowVersionSummary):
    """A version with its YAML text and its parsed, validated spec."""

    yaml: str
    spec: dict[str, Any]


class WorkflowVersionResult(SQLModel):
    """What storing YAML gave: the workflow, the version, and whether that version is new."""

    created: bool
    workflow: WorkflowPublic
    version: WorkflowVersionPublic


def _clean_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not re.match(TAG_PATTERN, tag):
            raise ValueError(f"tag {tag!r} must match {TAG_PATTERN}")
    return sorted(set(tags))
