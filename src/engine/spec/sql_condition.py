"""A SQL source's `where`: conditions on columns, parsed and rebuilt, never passed to the server as written.

    condition := term (OR term)*          term := factor (AND factor)*
    factor    := NOT factor | ( condition ) | column test
    test      := op value | [NOT] LIKE text | [NOT] IN (value, ...) | IS [NOT] NULL | [NOT] BETWEEN value AND value
    op        := = | != | <> | < | <= | > | >=       value := number | 'text' | "text" | NULL | TRUE | FALSE

A column is a name (`status`, `order_id`) or a quoted one (`` `order date` ``). Functions, subqueries, UNION and
every other construct are refused when the workflow is stored; the values are sent as query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_LENGTH = 4096
MAX_DEPTH = 32
OPERATORS = ("<=", ">=", "<>", "!=", "=", "<", ">")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<text>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`(?:[^`]|``)+`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE | re.DOTALL)
KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN", "LIKE", "BETWEEN", "TRUE", "FALSE"}
REFUSED = {"SELECT", "UNION", "FROM", "EXISTS", "INTO", "OUTFILE", "DUMPFILE", "LIMIT", "ORDER", "GROUP", "HAVING",
           "REGEXP", "RLIKE", "SOUNDS", "XOR", "DIV", "MOD", "CASE", "WHEN", "COLLATE", "BINARY", "INTERVAL"}


class ConditionError(ValueError):
    """`where` is not a condition this parser accepts; the message says what and where."""


@dataclass(frozen=True)
class Token:
    kind: str  # number, text, quoted, name, op, punct, end
    text: str
    at: int  # 1-based character position


@dataclass(frozen=True)
class Condition:
    """A parsed `where`: SQL with %s placeholders (columns quoted by the caller's quoting), and its values."""

    parts: tuple[Any, ...]  # str pieces of SQL, Column(name) and Value(v), in order

    def columns(self) -> list[str]:
        """The columns the condition names."""
        return [part.name for part in self.parts if isinstance(part, Column)]

    def sql(self, quote: Callable[[str], str]) -> tuple[str, list[Any]]:
        """The condition as SQL for a driver with %s placeholders, and the values in order."""
        pieces: list[str] = []
        values: list[Any] = []
        for part in self.parts:
            if isinstance(part, Column):
                pieces.append(quote(part.name))
            elif isinstance(part, Value):
                pieces.append("%s")
                values.append(part.value)
            else:
                pieces.append(part)
        return " ".join(pieces), values


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Value:
    value: Any


def tokens(text: str) -> list[Token]:
    """The condition's tokens; ConditionError at the first character that starts none."""
    found: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionError(f"unexpected {text[position]!r} at character {position + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group(), position + 1))
        position = match.end()
    found.append(Token("end", "", len(text) + 1))
    return found


def parse_condition(text: str) -> Condition:
    """The condition `text` says; ConditionError with what is refused and where."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"at most {MAX_LENGTH} characters")
    parser = _Parser(tokens(text))
    parts = parser.condition(0)
    if parser.peek.kind != "end":
        raise parser.unexpected("AND, OR or the end")
    return Condition(tuple(parts))


def condition_problem(text: str) -> str | None:
    """Why `text` is not an accepted condition, or None."""
    try:
        parse_condition(text)
    except ConditionError as exc:
        return (f"{exc}; write conditions on columns (column = 'value', amount > 10, status IN ('a', 'b'), "
                "name LIKE 'x%', note IS NULL) joined by AND, OR, NOT and parentheses: functions, subqueries and "
                "UNION are not allowed")
    return None


class _Parser:
    def __init__(self, items: list[Token]) -> None:
        self.items = items
        self.index = 0

    @property
    def peek(self) -> Token:
        return self.items[self.index]

    def take(self) -> Token:
        token = self.items[self.index]
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek
        if token.kind == "name" and token.text.upper() in words:
            self.index += 1
            return True
        return False

    def unexpected(self, wanted: str) -> ConditionError:
        token = self.peek
        if token.kind == "end":
            return ConditionError(f"the condition ends where {wanted} was expected")
        if token.kind == "name" and token.text.upper() in REFUSED:
            return ConditionError(f"{token.text.upper()} is not allowed (character {token.at})")
        return ConditionError(f"expected {wanted} at character {token.at}, found {token.text!r}")

    def condition(self, depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            raise ConditionError(f"parentheses nest deeper than {MAX_DEPTH}")
        parts = self.term(depth)
        while self.keyword("OR"):
            parts += ["OR", *self.term(depth)]
        return parts

    def term(self, depth: int) -> list[Any]:
        parts = self.factor(depth)
        while self.keyword("AND"):
            parts += ["AND", *self.factor(depth)]
        return parts

    def factor(self, depth: int) -> list[Any]:
        if self.keyword("NOT"):
            return ["NOT", *self.factor(depth + 1)]
        if self.peek.text == "(":
            self.take()
            inner = self.condition(depth + 1)
            if self.take().text != ")":
                self.index -= 1
                raise self.unexpected("')'")
            return ["(", *inner, ")"]
        return [self.column(), *self.test()]

    def column(self) -> Column:
        token = self.peek
        if token.kind == "quoted":
            self.take()
            return Column(token.text[1:-1].replace("``", "`"))
        if token.kind == "name" and token.text.upper() not in KEYWORDS | REFUSED:
            self.take()
            if self.peek.text == "(":
                raise ConditionError(f"a function ({token.text}) is not allowed (character {token.at})")
            return Column(token.text)
        raise self.unexpected("a column name")

    def test(self) -> list[Any]:
        token = self.peek
        if token.kind == "op":
            self.take()
            return ["<>" if token.text == "!=" else token.text, self.value()]
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.unexpected("NULL")
            return ["IS NOT NULL" if negated else "IS NULL"]
        negated = self.keyword("NOT")
        prefix = ["NOT"] if negated else []
        if self.keyword("LIKE"):
            pattern = self.value()
            if not isinstance(pattern.value, str):
                raise ConditionError("LIKE takes a text in quotes")
            return [*prefix, "LIKE", pattern]
        if self.keyword("IN"):
            if self.take().text != "(":
                self.index -= 1
                raise self.unexpected("'(' and a list of values")
            values: list[Any] = [self.value()]
            while self.peek.text == ",":
                self.take()
                values += [",", self.value()]
            if self.take().text != ")":
                self.index -= 1
                raise self.unexpected("',' or ')'")
            return [*prefix, "IN", "(", *values, ")"]
        if self.keyword("BETWEEN"):
            low = self.value()
            if not self.keyword("AND"):
                raise self.unexpected("AND")
            return [*prefix, "BETWEEN", low, "AND", self.value()]
        raise self.unexpected("an operator (=, <>, <, <=, >, >=, LIKE, IN, IS NULL, BETWEEN)")

    def value(self) -> Value:
        token = self.take()
        if token.kind == "number":
            text = token.text
            return Value(int(text) if re.fullmatch(r"[-+]?\d+", text) else Decimal(text))
        if token.kind == "text":
            return Value(_unquote(token.text))
        if token.kind == "name" and token.text.upper() in ("NULL", "TRUE", "FALSE"):
            return Value({"NULL": None, "TRUE": True, "FALSE": False}[token.text.upper()])
        self.index -= 1
        if token.kind == "name" and self.items[self.index + 1].text == "(":
            raise ConditionError(f"a function ({token.text}) is not allowed (character {token.at})")
        raise self.unexpected("a value (a number, a 'text', NULL, TRUE or FALSE)")


_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _unquote(token: str) -> str:
    """A MySQL string literal's text: doubled quotes and backslash escapes as MySQL reads them."""
    quote, body = token[0], token[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            following = body[i + 1]
            out.append(_ESCAPES.get(following, following if following not in "%_" else "\\" + following))
            i += 2
        elif char == quote and body[i + 1:i + 2] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)
