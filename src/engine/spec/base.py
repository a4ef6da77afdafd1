"""What every part of a spec shares: strict models, placeholders, locations of errors."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# `{record_json}` or `{column}`; a brace followed by a quote (a JSON example in the prompt) is not one.
PLACEHOLDER = re.compile(r"\{(\w[\w .\-]*)\}")
RECORD_JSON = "record_json"
Location = tuple[str | int, ...]


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a spec must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")
