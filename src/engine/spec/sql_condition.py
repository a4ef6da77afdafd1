"""A MySQL `where` from a spec must be one condition: no second statement, no comment that cuts the query."""

from __future__ import annotations

QUOTES = "'\"`"


def condition_problem(text: str) -> str | None:
    """Why `text` is not a single SQL condition, or None.

    Outside quoted strings and identifiers it may not contain `;` (a second statement) or a comment (`#`,
    `-- `, `/* */`, which would cut off the rest of the query the engine builds around it).
    """
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                if text[i + 1:i + 2] == quote:  # a doubled quote stands for itself
                    i += 2
                    continue
                quote = None
        elif char in QUOTES:
            quote = char
        elif char == ";":
            return "must be one condition: ';' would start a second statement"
        elif _comment_at(text, i):
            return "must be one condition: comments are not allowed"
        i += 1
    if quote is not None:
        return f"must be one condition: a {quote} is not closed"
    return None


def _comment_at(text: str, i: int) -> bool:
    """MySQL's comments: `#`, `/* */` (and `/*! */`), and `--` followed by white space or the end."""
    if text[i] == "#" or text.startswith("/*", i):
        return True
    return text.startswith("--", i) and (i + 2 == len(text) or text[i + 2].isspace())
