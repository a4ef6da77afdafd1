"""`rowloom import-dataflux`: an AI-DataFlux config becomes a workflow that runs, and a gateway config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from engine.gateway.openai_client import OpenAIClient
from engine.run import run_spec
from engine.spec import load_spec
from tests.support.fake_upstream import FakeUpstream
from tests.support.workbooks import read_sheet, write_workbook

CONFIG = """global:
  log: {level: "info"}
datasource:
  type: excel
  concurrency:
    max_workers: 50
    save_interval: 600
    api_pause_duration: 1.5
    api_error_trigger_window: 3.0
    retry_limits: {api_error: 4, content_error: 2, system_error: 1}
excel:
  input_path: "./in.xlsx"
  output_path: "./out.xlsx"
columns_to_extract: ["subject", "body"]
columns_to_write:
  category: "ai_category"
  summary: "ai_summary"
validation:
  enabled: true
  field_rules:
    category: ["technical", "business", "general"]
models:
  - {id: 1, name: "model-1", model: "gpt-4o-mini", channel_id: "1", api_key: "sk-secret-1", weight: 10,
     safe_rps: 5, supports_json_schema: true, timeout: 120}
channels:
  "1": {name: "openai-api", base_url: "https://api.example.invalid", api_path: "/v1/chat/completions", timeout: 120}
prompt:
  required_fields: ["category", "summary"]
  use_json_schema: true
  temperature: 0.3
  system_prompt: |
    你是一个专业的数据分析师。
  template: |
    请分析以下工单:
    {record_json}
    返回 JSON, 例如:
    {
      "category": "technical",
      "summary": "..."
    }
"""


def test_import_writes_a_valid_workflow_and_a_gateway_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "rowloom.cli", "import-dataflux", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ROWLOOM_KEY_MODEL_1" in result.stdout
    spec = load_spec((tmp_path / "config.workflow.yaml").read_text(encoding="utf-8")).spec
    assert spec.columns.input == ["subject", "body"]
    assert spec.columns.output == {"category": "ai_category", "summary": "ai_summary"}
    assert spec.validation == {"category": ["technical", "business", "general"]}
    assert (spec.concurrency.in_flight, spec.concurrency.pause_on_api_error_s, spec.concurrency.error_window_s) == \
        (50, 1.5, 3.0)
    assert (spec.retry.api_error, spec.retry.content_error, spec.retry.system_error) == (4, 2, 1)
    assert spec.prompt.system.startswith("你是") and '"category": "technical"' in spec.prompt.template
    gateway_text = (tmp_path / "config.gateway.yaml").read_text(encoding="utf-8")
    assert "sk-secret-1" not in gateway_text
    gateway = YAML(typ="safe").load(gateway_text)
    assert gateway["models"][0] == {"name": "model-1", "model": "gpt-4o-mini", "channel": "1",
                                    "api_key": "${ROWLOOM_KEY_MODEL_1}", "weight": 10, "safe_rps": 5,
                                    "timeout": 120, "supports_json_schema": True}
    assert gateway["channels"]["1"]["base_url"] == "https://api.example.invalid"


async def test_imported_workflow_runs_on_the_users_files(tmp_path: Path) -> None:
    from rowloom.dataflux import convert

    write_workbook(tmp_path / "in.xlsx", 12, notes_first=False)  # AI-DataFlux reads the first sheet
    spec = load_spec(convert(CONFIG, name="tickets").workflow_yaml).spec
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        outcome = await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w")
        await client.aclose()
    assert outcome.progress.done == 11
    out = read_sheet(tmp_path / "out.xlsx")
    assert out["ai_summary"].drop_nulls().len() == 11


def test_the_import_warns_of_what_it_drops_and_never_writes_a_broken_gateway(tmp_path: Path) -> None:
    config = CONFIG.replace("    max_workers: 50\n", "    max_workers: 50\n    batch_size: 100\n").replace(
        "models:\n", "models:\n  - {id: 2, name: orphan, model: m, channel_id: \"2\", api_key: sk-2, shard: 3}\n")
    (tmp_path / "config.yaml").write_text(config)
    result = subprocess.run([sys.executable, "-m", "rowloom", "import-dataflux", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: datasource.concurrency.batch_size: dropped (Rowloom keeps a continuous window of in_flight " \
           "rows; there are no batches)" in warnings
    assert any(w.startswith("warning: global: dropped") for w in warnings)
    assert any(w.startswith("warning: models.0.shard: dropped") for w in warnings)
    assert any("models.0 (orphan): left out: its channel_id '2' is not among the channels (1)" in w for w in warnings)
    gateway = tmp_path / "config.gateway.yaml"
    checked = subprocess.run([sys.executable, "-m", "rowloom", "validate", str(gateway)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "valid gateway config (1 models, 1 channels" in checked.stdout
    workflow = subprocess.run([sys.executable, "-m", "rowloom", "validate", str(tmp_path / "config.workflow.yaml")],
                              capture_output=True, text=True, timeout=60)
    assert workflow.returncode == 0 and "valid workflow spec" in workflow.stdout


def test_validate_checks_a_gateways_references_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models:\n  - {name: a, model: m, channel: nope}\nchannels: {c: {base_url: 'http://x'}}\n"
                    "groups: {g: [a, b]}\n")
    result = subprocess.run([sys.executable, "-m", "rowloom", "validate", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert f"{path}:2:" in result.stderr and "'nope' is not a channel" in result.stderr
    assert f"{path}:4:" in result.stderr and "unknown model 'b'" in result.stderr
