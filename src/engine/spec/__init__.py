"""The workflow spec: its models and a YAML loader whose errors name line and column."""

from engine.spec.loader import LoadedSpec, SpecError, SpecIssue, load_spec, validate_spec_data
from engine.spec.models import WorkflowSpec

__all__ = ["LoadedSpec", "SpecError", "SpecIssue", "WorkflowSpec", "load_spec", "validate_spec_data"]
