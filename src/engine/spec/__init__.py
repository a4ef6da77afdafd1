"""The workflow spec: its models, a YAML loader whose errors name line and column, and job overrides."""

from engine.spec.loader import LoadedSpec, load_spec, validate_spec_data
from engine.spec.models import WorkflowSpec
from engine.spec.params import merge_params

__all__ = ["LoadedSpec", "WorkflowSpec", "load_spec", "merge_params", "validate_spec_data"]
