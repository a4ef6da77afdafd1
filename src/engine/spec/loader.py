"""Parse workflow YAML (kept byte for byte) and validate it, placing every error at a line and column."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from engine.errors import ErrorDetail, SpecError
from engine.spec.models import DEFER_REFERENCES, MAX_STEPS, Location, WorkflowSpec, field_names, reference_errors
from engine.spec.yaml_limits import YamlLimitError, check_shape

M = TypeVar("M", bound=BaseModel)
# A rule beyond the spec's own (the platform's path and secret policies): problems, each with where it is.
SpecCheck = Callable[[WorkflowSpec], list[tuple[Location, str]]]


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the exact text it came from and that text's sha256."""

    text: str
    sha256: str
    spec: WorkflowSpec
    data: dict[str, Any] = field(repr=False)


def sha256_of(text: str) -> str:
    """The content hash of a spec's text, as stored with each workflow version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_yaml(text: str, *, item_limits: dict[str, int] | None = None) -> Any:
    """Parse YAML with ruamel's round-trip loader, which keeps positions for error messages; documents over
    the limits of `yaml_limits` (depth, size after aliases, items of a top-level list) are refused before
    anything is built."""
    try:
        check_shape(text, item_limits=item_limits)
        return YAML(typ="rt").load(text)
    except YamlLimitError as exc:
        raise SpecError([ErrorDetail(exc.field, f"{'' if exc.field else 'YAML too large: '}{exc}", exc.mark.line + 1,
                                     exc.mark.column + 1)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecError([ErrorDetail("", f"YAML syntax: {problem}",
                                   mark.line + 1 if mark else None,
                                   mark.column + 1 if mark else None)]) from None
    except YAMLError as exc:
        raise SpecError([ErrorDetail("", f"YAML syntax: {exc}")]) from None


def to_plain(node: Any) -> Any:
    """ruamel's commented containers and scalars as plain dicts, lists and built-in scalars."""
    if isinstance(node, Mapping):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    for plain in (bool, int, float, str):
        if isinstance(node, plain):
            return plain(node)
    return node


def load_spec(text: str, *, checks: Sequence[SpecCheck] = ()) -> LoadedSpec:
    """Parse and validate a workflow's YAML text (and `checks`); raises SpecError naming line and column."""
    tree = parse_yaml(text, item_limits={"steps": MAX_STEPS})
    if tree is None:
        raise SpecError([ErrorDetail("", "the document is empty; a workflow spec is a mapping", 1, 1)])
    if not isinstance(tree, CommentedMap):
        raise SpecError([ErrorDetail("", "a workflow spec must be a mapping of sections (source, prompt, ...)",
                                   1, 1)])
    data = to_plain(tree)
    spec = validate_spec_data(data, tree=tree, checks=checks)
    return LoadedSpec(text=text, sha256=sha256_of(text), spec=spec, data=data)


def validate_spec_data(data: Mapping[str, Any], *, tree: Any = None, checks: Sequence[SpecCheck] = ()) -> WorkflowSpec:
    """Validate parsed spec data (and `checks`); with the ruamel tree, issues carry line and column."""
    def references(spec: WorkflowSpec) -> list[tuple[Location, str]]:
        return [problem for check in (reference_errors, *checks) for problem in check(spec)]

    return validate_referenced(WorkflowSpec, data, tree=tree, references=references)


def validate_referenced(model: type[M], data: Mapping[str, Any], *, tree: Any,
                        references: Callable[[M], list[tuple[Location, str]]]) -> M:
    """Validate field by field, then across sections; every issue placed at its line and column."""
    result = validate_positioned(model, data, tree=tree, context={DEFER_REFERENCES: True})
    problems = references(result)
    if problems:
        raise SpecError([_issue(loc, message, tree) for loc, message in problems])
    return result


def load_yaml_model(model: type[M], text: str, *, what: str,
                    references: Callable[[M], list[tuple[Location, str]]] | None = None) -> M:
    """Parse YAML text into any pydantic model, with positioned errors (gateway configs use this)."""
    tree = parse_yaml(text)
    if not isinstance(tree, CommentedMap):
        raise SpecError([ErrorDetail("", f"{what} must be a mapping", 1, 1)])
    if references is not None:
        return validate_referenced(model, to_plain(tree), tree=tree, references=references)
    return validate_positioned(model, to_plain(tree), tree=tree)


def validate_positioned(model: type[M], data: Mapping[str, Any], *, tree: Any = None,
                        context: dict[str, Any] | None = None) -> M:
    """`model.model_validate(data)`, with every error placed at its YAML line and column."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        issues: dict[tuple[str, int | None, int | None], ErrorDetail] = {}
        for err in exc.errors():
            issue = _issue(tuple(err["loc"]), _message(err, model), tree, at_key=err["type"] == "extra_forbidden")
            where = (issue.field, issue.line, issue.column)
            if where in issues:  # one field failing each member of a union: say it once
                issue = replace(issues[where], message=f"{issues[where].message}, or {issue.message}")
            issues[where] = issue
        raise SpecError(list(issues.values())) from None


def _message(err: Any, model: type[BaseModel]) -> str:
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), sorted(field_names(model)), n=1)
        return f"unknown field; did you mean {close[0]!r}?" if close else "unknown field (check the spelling)"
    if err["type"] == "union_tag_invalid":
        return f"unknown kind {err['input'].get('kind')!r}; expected one of {err['ctx']['expected_tags']}"
    return str(err["msg"])


def _issue(loc: Location, message: str, tree: Any, *, at_key: bool = False) -> ErrorDetail:
    path, position = _locate(loc, tree, at_key=at_key)
    line, column = position if position else (None, None)
    return ErrorDetail(".".join(str(p) for p in path), message, line, column)


def _locate(loc: Location, tree: Any, *, at_key: bool) -> tuple[list[str | int], tuple[int, int] | None]:
    """Walk the error location through the YAML tree; returns the user-facing path and position."""
    path: list[str | int] = []
    node = tree
    position = _start(tree)
    tag_passed = False  # pydantic names a discriminated union's tag right after the union's place
    for part in loc:
        if isinstance(node, CommentedMap):
            if node.get("kind") == part and not tag_passed:  # the tag (a prompt step's tag is also a key)
                tag_passed = True
                continue
            tag_passed = True
            if part in node:
                path.append(part)
                position = _key_position(node, part) if at_key else _value_position(node, part)
                node = node[part]
                tag_passed = False
                continue
            path.append(part)  # a missing field: point at the mapping that lacks it
            node = None
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            line, col = node.lc.item(part)
            position = (line + 1, col + 1)
            node = node[part]
        elif node is None:
            path.append(part)
        # else: a scalar; what follows are pydantic's union-member labels ("int", "str"), not keys
    return path, position


def _start(node: Any) -> tuple[int, int] | None:
    if isinstance(node, CommentedMap | CommentedSeq):
        return node.lc.line + 1, node.lc.col + 1
    return None


def _value_position(node: CommentedMap, key: Any) -> tuple[int, int]:
    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and value:
        return value.lc.line + 1, value.lc.col + 1
    line, col = node.lc.value(key)
    if line is None:
        return _key_position(node, key)
    return line + 1, col + 1


def _key_position(node: CommentedMap, key: Any) -> tuple[int, int]:
    line, col = node.lc.key(key)
    return line + 1, col + 1
