"""OpenTelemetry for workers: an SDK tracer provider whose exporter the standard OTEL_* variables choose.

A provider is always installed (even with no exporter) so every job gets a real trace id on its record.
OTEL_TRACES_EXPORTER: `console`, `otlp` (OTLP over HTTP; OTEL_EXPORTER_OTLP_ENDPOINT and friends apply),
or `none` (the default here: the standard's default, otlp, would fail with no collector running).
"""

from __future__ import annotations

import os
import random

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter


def setup_tracing(service_name: str = "rowloom-worker") -> TracerProvider:
    """Install (once) and return the process's SDK tracer provider."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","):
        exporter = _exporter(name.strip().lower())
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(name: str) -> SpanExporter | None:
    if name in {"", "none"}:
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (use console, otlp or none)")


def job_context(trace_id: str | None) -> context.Context:
    """The parent of a job run's root span: a fresh trace, or the job's existing trace when it resumes."""
    if not trace_id:
        return context.Context()
    parent = trace.SpanContext(trace_id=int(trace_id, 16), span_id=random.getrandbits(64), is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def trace_id_of(span: trace.Span) -> str:
    """A span's trace id as the 32 hex digits OTel tools show."""
    return format(span.get_span_context().trace_id, "032x")
