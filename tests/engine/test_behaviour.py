"""Engine behaviour seen from outside: periodic saves, spans, progress, the pause window, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from engine.gateway.openai_client import OpenAIClient
from engine.run import attempts, run_spec, runner
from engine.run.pause import PauseGate
from engine.run.progress import Progress
from tests.support.engine_helpers import SPEC, make_spec, read_csv_text, tickets
from tests.support.fake_upstream import FakeUpstream, first_attempts


async def test_partial_output_is_saved_during_a_long_run(tmp_path: Path) -> None:
    tickets(60).write_csv(tmp_path / "in.csv")
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}",
                     in_flight=2, extra="").model_copy(deep=True)
    spec.concurrency.save_interval_s = 0.3
    saves: list[int] = []

    def on_event(kind: str, message: str, data: dict[str, Any]) -> None:
        if kind == "output_saved":
            saves.append(read_csv_text(tmp_path / "out.csv")["ai_summary"].drop_nulls().len())

    async with FakeUpstream(latency_s=0.02) as up:
        client = OpenAIClient(up.base_url)
        outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w", on_event=on_event)
        await client.aclose()
    assert saves, "no periodic save happened"
    assert 0 < saves[0] < outcome.progress.done == 54  # a partial file, readable while the run goes on
    assert saves == sorted(saves)


async def test_run_and_attempt_spans_reach_the_sdk(tmp_path: Path, monkeypatch: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(attempts, "attempt_tracer", lambda: provider.get_tracer("rowloom.engine"))
    monkeypatch.setattr(runner, "tracer", provider.get_tracer("rowloom.engine"))
    tickets(10).write_csv(tmp_path / "in.csv")
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}")
    async with FakeUpstream(faults=first_attempts({"500": 0.3})) as up:
        client = OpenAIClient(up.base_url)
        await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    spans = exporter.get_finished_spans()
    [run_span] = [s for s in spans if s.name == "run"]
    row_spans = [s for s in spans if s.name == "row.attempt"]
    assert run_span.attributes is not None and run_span.attributes["rowloom.rows.done"] == 9
    assert len(row_spans) == up.stats.requests
    assert all(s.parent is not None and s.parent.span_id == run_span.context.span_id for s in row_spans)
    outcomes = {s.attributes["rowloom.outcome"] for s in row_spans if s.attributes}
    assert outcomes == {"done", "api_error"}
    done = next(s for s in row_spans if s.attributes and s.attributes["rowloom.outcome"] == "done")
    assert done.attributes is not None and done.attributes["gen_ai.usage.input_tokens"] > 0
    assert str(done.attributes["rowloom.row.key"]).startswith("T")
    assert trace.get_tracer_provider() is not provider  # the global provider was not touched


async def test_progress_reports_counts_rate_and_eta(tmp_path: Path) -> None:
    tickets(120).write_csv(tmp_path / "in.csv")
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}", in_flight=4)
    seen: list[Progress] = []
    async with FakeUpstream(latency_s=0.02) as up:
        client = OpenAIClient(up.base_url)
        await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w", on_progress=seen.append)
        await client.aclose()
    final = seen[-1]
    assert final.finished and (final.total, final.done, final.failed, final.skipped) == (120, 108, 0, 12)
    assert final.tokens_in > 0 and sum(final.models.values()) == 108
    midway = [p for p in seen if not p.finished and p.done]
    assert midway, "no progress while running"
    assert all(p.rows_per_s > 0 and p.eta_s is not None for p in midway)
    assert [p.handled for p in seen] == sorted(p.handled for p in seen)


async def test_api_errors_pause_everyone_once_per_window() -> None:
    pauses: list[str] = []
    now = [100.0]  # the window's clock; the pause itself runs on the loop's timer
    gate = PauseGate(pause_s=0.2, window_s=0.5, on_pause=lambda cause, s: pauses.append(cause),
                     clock=lambda: now[0])
    assert gate.trip("first") is True
    assert gate.trip("second, during the pause") is False
    started = asyncio.get_running_loop().time()
    await gate.wait()
    assert asyncio.get_running_loop().time() - started >= 0.15
    now[0] = 100.2 + 0.4  # the pause ended at 100.2: the window runs from there, so requests flow
    assert gate.trip("within the window after the pause") is False
    now[0] = 100.2 + 0.6
    assert gate.trip("after the window") is True
    assert pauses == ["first", "after the window"]


def test_cli_run_validate_and_resume(tmp_path: Path) -> None:
    tickets(30).write_csv(tmp_path / "in.csv")
    flow = tmp_path / "flow.yaml"
    flow.write_text(SPEC.format(
        source="{kind: csv, path: in.csv, key: id}", in_flight=4, api=3, content=2,
        extra="sink: {kind: csv, path: out/result.csv}"), encoding="utf-8")
    cli = [sys.executable, "-m", "rowloom.cli"]
    validated = subprocess.run([*cli, "validate", str(flow)], capture_output=True, text=True, timeout=60)
    assert validated.returncode == 0 and "valid workflow spec" in validated.stdout
    first = subprocess.run([*cli, "run", str(flow)], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "27 done, 0 failed, 3 skipped of 30 rows" in first.stdout
    assert (tmp_path / "out" / "result.csv").exists()
    again = subprocess.run([*cli, "run", str(flow)], capture_output=True, text=True, timeout=120)
    assert "tokens 0 in / 0 out" in again.stdout  # resumed from the results store: nothing sent
    broken = tmp_path / "broken.yaml"
    broken.write_text(flow.read_text().replace("template:", "templat:"), encoding="utf-8")
    failed = subprocess.run([*cli, "validate", str(broken)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert f"{broken}:8:3: prompt.templat: unknown field; did you mean 'template'?" in failed.stderr
    missing = subprocess.run([*cli, "run", str(flow).replace("flow", "nope")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2


def test_cli_run_through_a_gateway_config(tmp_path: Path) -> None:
    tickets(20).write_csv(tmp_path / "in.csv")
    flow = tmp_path / "flow.yaml"
    flow.write_text(SPEC.format(source="{kind: csv, path: in.csv, key: id}", in_flight=4, api=3, content=2,
                                extra="model: {name: fast}\nsink: {kind: csv, path: out.csv}"), encoding="utf-8")
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text("models:\n  - {name: local-a, model: mock, provider: mock}\n"
                       "  - {name: local-b, model: mock, provider: mock, supports_json_schema: false}\n"
                       "groups: {fast: [local-a]}\n", encoding="utf-8")
    cli = [sys.executable, "-m", "rowloom.cli", "run", str(flow), "--gateway", str(gateway)]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "18 done, 0 failed, 2 skipped" in result.stdout
    gateway.write_text("models:\n  - {name: x, model: m, channel: nope}\n", encoding="utf-8")
    broken = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "'nope' is not a channel" in broken.stderr


async def test_cli_reuses_answers_only_for_the_same_prompt_model_and_upstream(tmp_path: Path) -> None:
    tickets(12).write_csv(tmp_path / "in.csv")  # 11 rows to send, 1 with an empty body
    flow = tmp_path / "flow.yaml"
    text = SPEC.format(source="{kind: csv, path: in.csv, key: id}", in_flight=4, api=1, content=1,
                       extra="sink: {kind: csv, path: out.csv}")

    async with FakeUpstream() as up:
        async def run(*extra: str) -> str:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rowloom", "run", str(flow), "--upstream", up.base_url, *extra,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), timeout=120)
            assert process.returncode == 0, err.decode()
            return out.decode()

        flow.write_text(text, encoding="utf-8")
        first = await run("--model", "m1")
        sent = [up.stats.requests]
        again = await run("--model", "m1")
        sent.append(up.stats.requests)
        other_model = await run("--model", "m2")
        sent.append(up.stats.requests)
        flow.write_text(text.replace("Classify this ticket", "Sort this ticket"), encoding="utf-8")
        other_prompt = await run("--model", "m1")
        sent.append(up.stats.requests)
    assert "11 done, 0 failed" in first and "reused" not in first
    assert "11 done (11 reused from an earlier run), 0 failed" in again and "tokens 0 in / 0 out" in again
    assert "reused" not in other_model and "reused" not in other_prompt
    assert sent == [11, 11, 22, 33]  # a changed model or prompt asks again; the same one never
