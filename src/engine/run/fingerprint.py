"""What decides a row's answer, as one hash: results kept for a resume are reused only under the same one."""

from __future__ import annotations

import hashlib
import json

from engine.spec.models import WorkflowSpec


def answer_fingerprint(spec: WorkflowSpec, upstream: str = "") -> str:
    """sha256 of everything that shapes an answer: the prompt, the columns sent and written, the answer contract,
    the model choice, and `upstream` (who answers: a URL and model, or a gateway config)."""
    parts: dict[str, object] = {"upstream": upstream, "model": spec.model.model_dump(mode="json")}
    if spec.steps is not None:
        parts["steps"] = [step.model_dump(mode="json") for step in spec.steps]
    else:
        assert spec.prompt is not None and spec.columns is not None
        parts |= {"prompt": spec.prompt.model_dump(mode="json"), "columns": spec.columns.model_dump(mode="json"),
                  "validation": spec.validation}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
