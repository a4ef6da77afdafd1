"""Limits a YAML document must keep before it is built into objects: nesting depth and size after aliases.

A billion-laughs document (aliases of aliases, nine levels deep) is a few hundred bytes that expand to a
billion nodes, and a document nested 20,000 levels deep makes the YAML scanner quadratic and its composer
recurse past Python's limit. Both are caught here from the parser's event stream, which is read without
building anything and stops at the first node over a limit.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)

MAX_DEPTH = 64  # mappings and sequences inside each other; a workflow needs fewer than ten
MAX_NODES = 200_000  # nodes after expanding every alias
MAX_BRACKETS = 4 * MAX_DEPTH  # unclosed [ and { in the raw text, quoted or not: checked before the scanner runs
_BRACKETS = re.compile(r"[\[\]{}]")


class YamlLimitError(ValueError):
    """The document breaks a limit; `mark` is where (ruamel's mark, 0-based)."""

    def __init__(self, message: str, mark: Any, field: str = "") -> None:
        super().__init__(message)
        self.mark = mark
        self.field = field


def check_shape(text: str, *, item_limits: dict[str, int] | None = None) -> None:
    """Raise YamlLimitError if the document nests deeper than MAX_DEPTH or expands past MAX_NODES, or if a list
    under a top-level key of `item_limits` has more items than it allows (found at the first item too many, so a
    document of ten thousand steps costs no more to refuse than one of a hundred)."""
    _check_brackets(text)
    limits = item_limits or {}
    nodes = 0  # nodes so far, every alias counted as the nodes it stands for
    open_at: list[tuple[int, str | None]] = []  # per open collection: `nodes` at its start, its anchor
    children: list[int] = []  # per open collection: its complete children so far
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    key: Any = None  # the top-level key whose value is being read
    limited: tuple[str, int] | None = None  # the top-level list being counted, and its limit
    for event in YAML(typ="rt").parse(text):
        if isinstance(event, CollectionStartEvent):
            if len(open_at) >= MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            if len(open_at) == 1 and key in limits:
                limited = (key, limits[key])
            open_at.append((nodes, event.anchor))
            children.append(0)
            nodes += 1
            continue
        if isinstance(event, CollectionEndEvent):
            started, anchor = open_at.pop()
            children.pop()
            if anchor is not None:
                sizes[anchor] = nodes - started
            if len(open_at) == 1:
                limited = None
        elif isinstance(event, ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            if len(open_at) == 1 and children[0] % 2 == 0:
                key = event.value
        elif isinstance(event, AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        else:
            continue
        if nodes > MAX_NODES:
            raise YamlLimitError(f"more than {MAX_NODES:,} nodes once aliases are expanded", event.start_mark)
        if children:
            children[-1] += 1
            if limited is not None and len(open_at) == 2 and children[-1] > limited[1]:
                raise YamlLimitError(f"at most {limited[1]} items", event.start_mark, field=limited[0])


def _check_brackets(text: str) -> None:
    """Flow collections nested very deep make ruamel's scanner slow before it yields a first event (it looks
    ahead through every open bracket), so count them in the raw text first. Brackets inside quoted strings
    count too, which only matters for a string with hundreds of unclosed ones."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_BRACKETS:
            line = text.count("\n", 0, match.start())
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1)
            raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", _Mark(line, column))


class _Mark:
    """Where in the text, as ruamel's marks say it (0-based)."""

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column
