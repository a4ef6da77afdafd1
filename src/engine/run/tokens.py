"""Token counts without calling a model: the model family's own tokenizer where one ships offline, else an
approximation.

OpenAI's encodings (o200k_base for gpt-4o, gpt-4.1, o1/o3/o4; cl100k_base for gpt-4 and gpt-3.5) come from
bpe-openai, whose vocabularies are inside the package: nothing is downloaded. Other model names count one
token for every 4 characters, the rule of thumb providers publish for English text.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import bpe_openai

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 3  # what each chat message adds around its content (role, separators), as OpenAI counts
REPLY_TOKENS = 3  # what primes the answer


# Families newer than the package's own table, by name prefix (the longest that matches wins).
FAMILIES = {"gpt-5": "o200k_base", "gpt-4.1": "o200k_base", "gpt-4o": "o200k_base", "o1": "o200k_base",
            "o3": "o200k_base", "o4": "o200k_base", "gpt-4": "cl100k_base", "gpt-3.5": "cl100k_base"}


@functools.lru_cache(maxsize=64)
def encoding_for(model: str) -> Any | None:
    """The model family's encoding, or None when none is known for this name."""
    try:
        name = bpe_openai.encoding_name_for_model(model)
    except (bpe_openai.UnsupportedModelError, KeyError, ValueError):
        prefixes = sorted((p for p in FAMILIES if model.startswith(p)), key=len, reverse=True)
        if not prefixes:
            return None
        name = FAMILIES[prefixes[0]]
    return bpe_openai.get_encoding(name)


def tokenizer_name(model: str) -> str:
    """What counts this model's tokens: an encoding's name, or `approximate`."""
    encoding = encoding_for(model)
    return str(encoding.name) if encoding is not None else "approximate"


def count_text(text: str, model: str) -> int:
    """Tokens of `text` for `model`."""
    encoding = encoding_for(model)
    if encoding is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoding.encode_ordinary(text))


def count_messages(messages: list[dict[str, str]], model: str) -> int:
    """Prompt tokens of a chat request for `model`."""
    return sum(count_text(m.get("content", ""), model) + MESSAGE_TOKENS for m in messages) + REPLY_TOKENS
