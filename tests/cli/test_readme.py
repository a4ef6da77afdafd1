"""The README's curl examples, run as written (with bash and curl) against a served platform."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.gateway import load_gateway
from rowloom.demo import write_demo_input
from tests.support.fake_upstream import FakeUpstream
from tests.support.served import served
from tests.support.worker_helpers import platform, wait_status

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(after: str) -> list[str]:
    """The ```sh blocks of the README section headed `after` (up to the next section)."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {after}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


AUTH = 'AUTH="Authorization: Bearer $ROWLOOM_KEY"\n'  # as the "Try it" block defines it


async def bash(script: str, base_url: str, key: str, *, strict: bool, cwd: Path) -> tuple[int, str]:
    """Run a README block: its host is the served platform's, its key the test's; strict: any HTTP error fails."""
    script = script.replace("localhost:8000", base_url.removeprefix("http://"))
    script = re.sub(r"^export ROWLOOM_KEY=rlk_\.\.\..*$", "", script, flags=re.M)
    if strict:
        script = script.replace("curl -s ", "curl -sSf ")
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, env={**os.environ, "ROWLOOM_KEY": key},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
async def test_the_readmes_examples_work_as_written(database_url: str, tmp_path: Path) -> None:
    write_demo_input(tmp_path)  # what `python3 dev.py start` writes under DATA_DIR
    [try_it] = blocks("Try it")
    jobs_block = blocks("Jobs and workers")[0]
    [cost_block] = blocks("Cost: budgets and the answer cache")
    [steps_block] = blocks("Workflows with steps")
    gateway_block = next(b for b in blocks("Run a workflow without the platform") if "/v1/chat" in b)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p, \
            served(p.app) as base_url:
        key = p.http.headers["Authorization"].removeprefix("Bearer ")
        code, out = await bash(try_it, base_url, key, strict=True, cwd=tmp_path)
        assert code == 0, out
        job_id = int(re.findall(r'"id":(\d+),"name":"ticket-triage","workflow_id"', out)[0])  # 1 on a new database
        job: dict[str, Any] = await wait_status(p.http, job_id, "completed")
        assert job["counts"]["done"] == 4 and job["params"] == {"source": {"path": "nov.csv"}}
        code, out = await bash(AUTH + cost_block.replace("/jobs/1", f"/jobs/{job_id}"), base_url, key,
                               strict=True, cwd=tmp_path)
        assert code == 0, out
        assert '"scope":"workflow","target":"ticket-triage","period":"day","limit_usd":25.0' in out
        assert '"estimate":{"rows_total":4' in out and '"cost_saved":' in out
        code, out = await bash(AUTH + jobs_block.replace("/jobs/1", f"/jobs/{job_id}"), base_url, key,
                               strict=False, cwd=tmp_path)
        assert code == 0, out
        assert '"status":"completed"' in out and '"outputs":{"category":' in out and "rowloom_jobs" in out
        assert '"status":401' not in out and '"status":500' not in out
        code, out = await bash(AUTH + steps_block, base_url, key, strict=True, cwd=tmp_path)
        assert code == 0 and '"steps":[{"id":"embed","kind":"embed"' in out, out
        [listed] = (await p.http.get("/api/v1/jobs", params={"workflow": "support-answers"})).json()["items"]
        steps_job = await wait_status(p.http, listed["id"], "completed")
        assert steps_job["workflow_name"] == "support-answers" and steps_job["counts"]["done"] == 8
        assert set(steps_job["steps"]) == {"embed", "articles", "triage", "technical_only", "reply"}
        code, out = await bash(AUTH + gateway_block, base_url, key, strict=True, cwd=tmp_path)
        assert code == 0 and '"object":"chat.completion"' in out, out
    assert "ai_category" in (tmp_path / "out.csv").read_text()  # `.../output -o out.csv` downloaded the output


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
async def test_the_readmes_batch_mode_examples_work_as_written(database_url: str, tmp_path: Path) -> None:
    write_demo_input(tmp_path / "data")
    [try_it] = blocks("Try it")
    on_platform, offline = blocks("Batch mode")
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path / "data", upstream_url=upstream.base_url,
                     batch="{poll_s: 0.05}") as p, served(p.app) as base_url:
        key = p.http.headers["Authorization"].removeprefix("Bearer ")
        code, out = await bash(try_it.split("# Trigger a job")[0], base_url, key, strict=True, cwd=tmp_path)
        assert code == 0, out
        code, out = await bash(AUTH + on_platform, base_url, key, strict=True, cwd=tmp_path)
        assert code == 0, out
        job_id = int(re.findall(r'"id":(\d+),"name":"in batches"', out)[0])
        job = await wait_status(p.http, job_id, "completed")
    assert job["batches"] and job["batches"][0]["state"] == "collected" and job["counts"]["done"] > 0
    assert upstream.batches.stats.batches_created == len(job["batches"]) and upstream.stats.requests > 0
    rowloom = f"{shlex.quote(sys.executable)} -m rowloom"
    code, out = await bash(offline.replace(".venv/bin/rowloom", rowloom), "", "", strict=True, cwd=tmp_path)
    assert code == 0, out
    assert "submitted to mock" in out and "lines back" in out and " 0 failed" in out, out
    batched = (tmp_path / "batched.csv").read_text(encoding="utf-8")
    assert batched.splitlines()[0] == "id,subject,body,ai_category" and len(batched.splitlines()) > 2
    section = README.read_text(encoding="utf-8").split("## Batch mode\n", 1)[1].split("\n## ", 1)[0]
    [gateway] = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    deployment = load_gateway(gateway).models[0]  # the gateway example is a valid config, batches on
    assert deployment.batch is not None and deployment.batch.on_expiry == "resubmit"
