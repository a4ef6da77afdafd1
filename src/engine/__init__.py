"""Rowloom's row engine, a library: workflow specs, sources, the run, results, sinks and the gateway router.

This module is its door: what the platform (and anyone else) may use is named here, and in `engine.gateway` for
the gateway; the rest is the engine's own. Each name is imported on first use (`engine.exports`). The engine
imports nothing else of Rowloom's and no web, SQL-table or queue package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.exports import lazy_exports

if TYPE_CHECKING:
    from engine import event_loop
    from engine.errors import (
        ConfigImportError,
        ContentError,
        EngineError,
        ErrorDetail,
        InputError,
        SpecError,
        UpstreamDown,
    )
    from engine.events import RunEvent
    from engine.reference import ROOTS, json_schema
    from engine.results.answer_cache import STORED_AT_CHUNK, AnswerCache, CachedAnswer, SqliteAnswerCache
    from engine.results.batch_ledger import BatchLedger, BatchLine, BatchRecord, BatchState, SqliteBatchLedger
    from engine.results.sqlite_store import SqliteResultStore
    from engine.results.store import (
        ErrorClass,
        Key,
        ResultStore,
        RowResult,
        RowStatus,
        Unit,
        encode_key,
        stored_key,
    )
    from engine.run.batch_run import (
        UNCANCELLABLE,
        BatchBudget,
        BatchesOut,
        BatchRun,
        cancel_batches,
        requires_batches,
    )
    from engine.run.estimate import Estimate, estimate_run, estimated_step
    from engine.run.estimate_rows import EstimateMemo
    from engine.run.fingerprint import answer_fingerprint
    from engine.run.progress import Progress, ProgressCallback, StepCounts, added_steps
    from engine.run.runner import EventCallback, RunOutcome, run_spec
    from engine.sinks.mysql import is_table_output
    from engine.sources.columns import source_column_errors
    from engine.sources.mysql_connection import Connections
    from engine.sources.open import open_source
    from engine.spec.connections import NamedConnection, connection_errors, load_connections
    from engine.spec.flow import model_names, pipeline
    from engine.spec.loader import LoadedSpec, SpecCheck, load_spec, parse_yaml, to_plain, validate_spec_data
    from engine.spec.models import Location, PromptStep, WorkflowSpec
    from engine.spec.params import merge_params
    from engine.spec.paths import PathPolicy, ReadLimits, path_errors
    from engine.spec.secrets import Secrets, secret_errors
    from engine.spec.step_flow import compare_columns, step_targets

# Where each name comes from, by module (imported when the name is first used).
_FROM = {
    # errors
    "engine.errors": "ConfigImportError ContentError EngineError ErrorDetail InputError SpecError UpstreamDown",
    # run events
    "engine.events": "RunEvent",
    # a process's main coroutine
    "engine.event_loop": "event_loop",
    # the workflow spec
    "engine.spec.models": "Location PromptStep WorkflowSpec",
    "engine.spec.loader": "LoadedSpec SpecCheck load_spec parse_yaml to_plain validate_spec_data",
    "engine.spec.params": "merge_params",
    "engine.spec.flow": "model_names pipeline",
    "engine.spec.step_flow": "compare_columns step_targets",
    # what a spec may touch: paths, secrets, database connections
    "engine.spec.paths": "PathPolicy ReadLimits path_errors",
    "engine.spec.secrets": "Secrets secret_errors",
    "engine.spec.connections": "NamedConnection connection_errors load_connections",
    "engine.sources.columns": "source_column_errors",
    "engine.sources.mysql_connection": "Connections",
    # sources and sinks
    "engine.sources.open": "open_source",
    "engine.sinks.mysql": "is_table_output",
    # results and the answer cache
    "engine.results.store": "ErrorClass Key ResultStore RowResult RowStatus Unit encode_key stored_key",
    "engine.results.sqlite_store": "SqliteResultStore",
    "engine.results.answer_cache": "STORED_AT_CHUNK AnswerCache CachedAnswer SqliteAnswerCache",
    # the run
    "engine.run.runner": "EventCallback RunOutcome run_spec",
    "engine.run.progress": "Progress ProgressCallback StepCounts added_steps",
    "engine.run.fingerprint": "answer_fingerprint",
    # estimates
    "engine.run.estimate": "Estimate estimate_run estimated_step",
    "engine.run.estimate_rows": "EstimateMemo",
    # the reference of the spec, the gateway config and the connections file
    "engine.reference": "ROOTS json_schema",
    # provider batches: a run's rounds, and the ledger of what each batch holds
    "engine.run.batch_run": "UNCANCELLABLE BatchBudget BatchesOut BatchRun cancel_batches requires_batches",
    "engine.results.batch_ledger": "BatchLedger BatchLine BatchRecord BatchState SqliteBatchLedger",
}
__all__ = [
    "ROOTS", "STORED_AT_CHUNK", "UNCANCELLABLE", "AnswerCache", "BatchBudget", "BatchLedger", "BatchLine",
    "BatchRecord", "BatchRun", "BatchState", "BatchesOut", "CachedAnswer", "ConfigImportError", "Connections",
    "ContentError", "EngineError", "ErrorClass", "ErrorDetail", "Estimate", "EstimateMemo", "EventCallback",
    "InputError", "Key", "LoadedSpec", "Location", "NamedConnection", "PathPolicy", "Progress", "ProgressCallback",
    "PromptStep", "ReadLimits", "ResultStore", "RowResult", "RowStatus", "RunEvent", "RunOutcome", "Secrets",
    "SpecCheck", "SpecError", "SqliteAnswerCache", "SqliteBatchLedger", "SqliteResultStore", "StepCounts", "Unit",
    "UpstreamDown", "WorkflowSpec", "added_steps", "answer_fingerprint", "cancel_batches", "compare_columns",
    "connection_errors", "encode_key", "estimate_run", "estimated_step", "event_loop", "is_table_output", "json_schema",
    "load_connections", "load_spec", "merge_params", "model_names", "open_source", "parse_yaml", "path_errors",
    "pipeline", "requires_batches", "run_spec", "secret_errors", "source_column_errors", "step_targets", "stored_key",
    "to_plain", "validate_spec_data",
]
__getattr__, __dir__ = lazy_exports(__name__, _FROM, globals())
