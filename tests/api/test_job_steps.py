"""Multi-step workflows on the platform: stored, run, reported per step and model, refused early when wrong."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from rowloom.demo import run_demo
from tests.support.fake_upstream import FakeUpstream
from tests.support.served import served
from tests.support.worker_helpers import all_pages, platform, wait_status

MODELS = ("ma", "mb", "mc")
STEPS = """name: support
source: {kind: csv, path: questions.csv, key: id}
steps:
  - {id: embed, kind: embed, input: body, output: vector, model: emb}
  - id: find
    kind: retrieve
    query: vector
    knowledge: {source: {kind: csv, path: kb.csv}, text: text, id: doc}
    top_k: 2
    output: context
  - id: triage
    kind: prompt
    input: [body, context]
    output: {category: category}
    prompt: {template: "Triage {body} with {context}"}
    validation: {category: [technical, billing, other]}
    models: [ma, mb, mc]
    compare: {fields: [category]}
concurrency: {in_flight: 8}
sink: {kind: jsonl, path: out/support.jsonl}
"""


def write_tables(data_dir: Path, rows: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": [f"Q{i:03d}" for i in range(rows)],
                  "body": [f"Device {i} fails with code {i * 3}" for i in range(rows)]}).write_csv(
        data_dir / "questions.csv")
    pl.DataFrame({"doc": [f"kb-{i}" for i in range(12)],
                  "text": [f"Fix for code {i * 9}: restart part {i}" for i in range(12)]}).write_csv(
        data_dir / "kb.csv")


async def post_workflow(http: httpx.AsyncClient, text: str) -> httpx.Response:
    return await http.post("/api/v1/workflows", content=text, headers={"Content-Type": "application/yaml"})


async def test_a_multi_step_job_reports_each_step_and_model(database_url: str, tmp_path: Path) -> None:
    write_tables(tmp_path, 40)
    async with FakeUpstream(model_answers=True) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     extra_models=(*MODELS, "emb"), price=(100.0, 400.0)) as p:
        assert (await post_workflow(p.http, STEPS)).status_code == 201
        created = await p.http.post("/api/v1/jobs", json={"workflow": "support"})
        assert created.status_code == 201, created.text
        job = await wait_status(p.http, created.json()["id"], "completed")
        rows = await all_pages(p.http, f"/api/v1/jobs/{job['id']}/items")
        mb = await all_pages(p.http, f"/api/v1/jobs/{job['id']}/items", step="triage", model="mb")
        embedded = await all_pages(p.http, f"/api/v1/jobs/{job['id']}/items", step="embed")
        summary = (await p.http.get(f"/api/v1/jobs/{job['id']}/steps")).json()
        estimate = await p.http.post("/api/v1/jobs/estimate", json={"workflow": "support"})
    assert job["counts"]["done"] == 40 and job["counts"]["failed"] == 0
    assert {target: counts["done"] for target, counts in job["steps"]["triage"].items()} == \
        dict.fromkeys(MODELS, 40)
    assert job["steps"]["embed"][""]["done"] == 40 and job["steps"]["find"][""]["done"] == 40
    step_costs = sum(c["cost"] for by_model in job["steps"].values() for c in by_model.values())
    assert abs(job["usage"]["cost"] - step_costs) < 1e-6 and job["usage"]["cost"] > 0
    assert len(rows) == 40 and all(r["step"] == "" and r["cost"] == 0 for r in rows)
    assert len(mb) == 40 and {(i["step"], i["target"], i["model"]) for i in mb} == {("triage", "mb", "mb")}
    assert all(len(i["outputs"]["vector"]) == 4 for i in embedded)
    out = pl.read_ndjson(tmp_path / job["output"])
    by_key = {r["key"]: r["outputs"] for r in rows}
    for row in out.iter_rows(named=True):
        assert row["category_mb"] == {i["key"]: i["outputs"]["category"] for i in mb}[row["id"]]
        assert by_key[row["id"]]["category_agreement"] == row["category_agreement"]
        assert isinstance(row["vector"], list) and len(row["vector"]) == 4
    levels = Counter(out["category_agreement"].to_list())
    [triage] = [s for s in summary["steps"] if s["id"] == "triage"]
    assert [m["model"] for m in triage["models"]] == list(MODELS)
    assert all(m["done"] == 40 and m["failed"] == 0 and m["tokens_in"] > 0 and m["cost"] > 0
               and m["mean_latency_s"] is not None for m in triage["models"])
    [agreement] = triage["agreement"]
    assert agreement["rows"] == 40
    assert (agreement["all"], agreement["majority"], agreement["none"]) == tuple(
        levels[level] / 40 for level in ("all", "majority", "none"))
    assert [s["id"] for s in summary["steps"]] == ["embed", "find", "triage"]
    assert estimate.status_code == 422 and estimate.json()["error"]["field"] == "workflow"


def details(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 422, response.text
    found: dict[str, dict[str, Any]] = {}
    for detail in response.json()["error"]["details"]:  # one field may have several problems
        earlier = found.setdefault(detail["field"], {**detail, "message": ""})
        earlier["message"] += detail["message"] + "\n"
    return found


async def test_a_step_reading_a_column_nothing_provides_is_refused_at_post(database_url: str,
                                                                            tmp_path: Path) -> None:
    write_tables(tmp_path, 3)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     extra_models=(*MODELS, "emb")) as p:
        typo = details(await post_workflow(p.http, STEPS.replace("input: [body, context]", "input: [bodee, context]")))
        later = details(await post_workflow(p.http, STEPS.replace("query: vector", "query: context")))
        outside = details(await post_workflow(p.http, STEPS.replace("path: kb.csv", "path: ../kb.csv")))
        unknown_model = details(await post_workflow(p.http, STEPS.replace("[ma, mb, mc]", "[ma, mb, mz]")))
        listed = (await p.http.get("/api/v1/workflows", params={"offset": 0})).json()["total"]
    assert "'bodee' is not in the source" in typo["steps.2.input.0"]["message"]
    assert (typo["steps.2.input.0"]["line"], typo["steps.2.input.0"]["column"]) == (13, 13)
    assert "written by step 'find', which comes later" in later["steps.1.query"]["message"]
    assert later["steps.1.query"]["line"] == 7
    assert "outside the folders" in outside["steps.1.knowledge.source.path"]["message"]
    assert "unknown model 'mz'" in unknown_model["steps.2.models.2"]["message"]
    assert listed == 0  # nothing was stored


async def test_the_start_demo_runs_a_job_of_steps(database_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p, \
            served(p.app) as base_url:
        await run_demo(base_url, p.settings, p.http.headers["Authorization"].removeprefix("Bearer "))
        [listed] = (await p.http.get("/api/v1/jobs", params={"workflow": "demo-support-answers"})).json()["items"]
        job = (await p.http.get(f"/api/v1/jobs/{listed['id']}")).json()
    printed = capsys.readouterr().out
    assert printed.count("completed: 8 rows done, 0 failed") == 2, printed
    out = pl.read_csv(tmp_path / job["output"])
    assert "ticket_vector" not in out.columns and out["ai_reply"].null_count() == 0
    assert set(job["usage"]["models"]) == {"fake"}  # the deployment that answered, never the name asked (auto)
    assert out["article_ids"].null_count() == 0 and out["articles"].str.contains(r"^\[").all()
