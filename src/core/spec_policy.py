"""What the platform asks of every workflow and job it stores or runs, beyond the spec itself.

File paths resolve inside DATA_DIR or ALLOWED_ROOTS (after symlinks), secrets appear only as references to
`${SECRET_PREFIX...}` variables, and databases are the operator's named connections (or ALLOWED_DB_HOSTS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from core.settings import Settings
from engine import (
    Location,
    NamedConnection,
    PathPolicy,
    ReadLimits,
    SpecCheck,
    WorkflowSpec,
    connection_errors,
    load_connections,
    merge_params,
    model_names,
    path_errors,
    secret_errors,
    source_column_errors,
    validate_spec_data,
)
from engine.gateway import GatewayConfig


def path_policy(settings: Settings) -> PathPolicy:
    """Relative paths start at DATA_DIR; every path stays inside it, one of ALLOWED_ROOTS or OUTPUT_ROOT; outputs
    go to a job's own folder or OUTPUT_ROOT."""
    return PathPolicy.confined(settings.data_dir, settings.allowed_roots,
                               ReadLimits(settings.excel_max_cells, settings.reader_memory_mb << 20),
                               output_roots=[settings.output_root] if settings.output_root else [])


def spec_checks(settings: Settings) -> tuple[SpecCheck, ...]:
    """The checks a stored workflow version, a job's merged spec, and a job about to run must pass."""
    policy = path_policy(settings)
    named = operator_connections(settings)
    return (partial(path_errors, policy=policy), partial(secret_errors, prefix=settings.secret_prefix),
            partial(connection_errors, named=frozenset(named), allowed_hosts=tuple(settings.allowed_db_hosts)),
            partial(source_column_errors, policy=policy))


def effective_spec(stored: Mapping[str, Any], params: Mapping[str, Any], *,
                   checks: Sequence[SpecCheck]) -> WorkflowSpec:
    """What a job runs: its version's stored spec with the job's params merged in, validated and passing `checks`
    (the platform's are `spec_checks`); SpecError names each problem's field."""
    return validate_spec_data(merge_params(stored, params), checks=checks)


def operator_connections(settings: Settings) -> dict[str, NamedConnection]:
    """The database connections of CONNECTIONS_FILE (none without it); SpecError places a problem in the file."""
    if settings.connections_file is None:
        return {}
    return load_connections(settings.connections_file.read_text(encoding="utf-8"))


def model_name_errors(spec: WorkflowSpec, config: GatewayConfig) -> list[tuple[Location, str]]:
    """The spec's model names (its steps' too) that are no model or group of the gateway (nor `auto`)."""
    known = ["auto", *config.groups, *(d.name for d in config.models)]
    return [(location, f"unknown model {name!r}; the gateway has: {', '.join(known)}")
            for location, name in model_names(spec) if name not in known]
