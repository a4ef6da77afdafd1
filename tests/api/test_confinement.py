"""File paths of stored workflows and job params stay inside DATA_DIR (or ALLOWED_ROOTS), after symlinks:
refused at POST with the field's name and place, and checked again when a job opens each file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from core.models import Job
from core.queue import NoQueue
from core.server_files import exposed_server_files
from core.settings import Settings
from tests.support.engine_helpers import SPEC, read_csv_text
from tests.support.fake_upstream import FakeUpstream
from tests.support.worker_helpers import platform, running_with_rows_done, wait_status, write_tickets
from worker.inprocess import InProcessRunner

SECRET_LINE = "root:x:0:0:the first line of a file outside"


def spec(source: str, sink: str = "") -> str:
    """The tests' workflow reading `source` (a path), with a csv sink at `sink` if given."""
    extra = "model: {name: auto}" + (f"\nsink: {{kind: csv, path: '{sink}'}}" if sink else "")
    return SPEC.format(source=f"{{kind: csv, path: '{source}', key: id}}", in_flight=4, api=1, content=1,
                       extra=extra)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """DATA_DIR with tickets.csv, and a folder beside it (outside) holding a file nobody may read."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    write_tickets(data, 30)
    outside.mkdir()
    (outside / "secret.csv").write_text(f"id,subject,body\n1,{SECRET_LINE},x\n")
    return data, outside


@pytest.fixture
def settings(database_url: str, folders: tuple[Path, Path]) -> Settings:
    return Settings(database_url=database_url, redis_url=None, data_dir=folders[0])


def _problems(response: httpx.Response, status: int = 422) -> dict[str, dict[str, Any]]:
    assert response.status_code == status, response.text
    assert SECRET_LINE not in response.text
    return {d["field"]: d for d in response.json()["error"]["details"]}


async def test_paths_leaving_data_dir_are_refused_at_post(client: httpx.AsyncClient,
                                                          folders: tuple[Path, Path]) -> None:
    data, outside = folders
    (data / "link.csv").symlink_to(outside / "secret.csv")
    (data / "linked-dir").symlink_to(outside, target_is_directory=True)
    for source in (str(outside / "secret.csv"), "../outside/secret.csv", "/etc/passwd", "link.csv",
                   "linked-dir/secret.csv", "sub/../../outside/secret.csv"):
        problems = _problems(await client.post("/api/v1/workflows", json={"yaml": spec(source)}))
        assert "outside the folders" in problems["source.path"]["message"], source
        assert problems["source.path"]["line"] == 2 and str(data) not in problems["source.path"]["message"]
    problems = _problems(await client.post("/api/v1/workflows", json={"yaml": spec("tickets.csv", "../out.csv")}))
    assert set(problems) == {"sink.path"}
    assert (await client.get("/api/v1/workflows", params={"offset": 0})).json()["total"] == 0


async def test_paths_inside_data_dir_or_an_allowed_root_are_accepted(client: httpx.AsyncClient,
                                                                     folders: tuple[Path, Path],
                                                                     settings: Settings) -> None:
    data, outside = folders
    # `~` and `%2e%2e` are plain names here: a confined path is never expanded or URL-decoded.
    for source in ("tickets.csv", str(data / "tickets.csv"), "sub/../tickets.csv", "%2e%2e/tickets.csv",
                   "~/tickets.csv"):
        response = await client.post("/api/v1/workflows", json={"yaml": spec(source) + f"# {source}\n"})
        assert response.status_code == 201, (source, response.text)
    widened = settings.model_copy(update={"allowed_roots": [outside]})
    from api_server.main import create_app

    state = client._transport.app.state  # type: ignore[attr-defined]
    app = create_app(widened, state.database, state.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=client.headers) as http:
        stored = await http.post("/api/v1/workflows", json={"yaml": spec(str(outside / "secret.csv"))})
    assert stored.status_code == 201, stored.text


async def test_job_params_are_held_to_the_same_folders(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/workflows", json={"yaml": spec("tickets.csv")})).status_code == 201
    for params, field in (({"source": {"path": "../outside/secret.csv"}}, "params.source.path"),
                          ({"sink": {"kind": "csv", "path": "/tmp/victim.txt"}}, "params.sink.path")):
        problems = _problems(await client.post("/api/v1/jobs", json={"workflow": "triage", "params": params}))
        assert field in problems, problems


async def test_url_encoded_traversal_in_routes_reads_nothing(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/workflows/..%2F..%2Fetc%2Fpasswd", "/api/v1/workflows/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd/output", "/api/v1/jobs/1%2F..%2F..%2Fetc/output",
                 "/api/v1/workflows/..%252f..%252fetc%252fpasswd/versions/1?format=yaml"):
        response = await client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert "root:" not in response.text


async def test_a_symlink_swapped_in_after_post_fails_the_job_before_reading_or_writing(
        database_url: str, folders: tuple[Path, Path]) -> None:
    data, outside = folders
    victim = outside / "victim.txt"
    victim.write_text("keep me\n")
    (data / "in.csv").write_bytes((data / "tickets.csv").read_bytes())
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url, queue=NoQueue()) as p:
        stored = await p.http.post("/api/v1/workflows", json={"yaml": spec("in.csv", "out.csv")})
        assert stored.status_code == 201, stored.text
        job = await p.http.post("/api/v1/jobs", json={"workflow": "triage"})
        assert job.status_code == 201, job.text
        (data / "in.csv").unlink()
        (data / "in.csv").symlink_to(outside / "secret.csv")  # swapped after the checks at POST
        runner = InProcessRunner(p.database, p.router, p.settings)
        p.app.state.queue = runner
        await runner.start()  # offers the waiting job
        failed = await wait_status(p.http, job.json()["id"], "failed")
        assert "source.path" in failed["error"] and "outside the folders" in failed["error"]
        assert SECRET_LINE not in failed["error"] and failed["counts"]["done"] == 0

        (data / "in.csv").unlink()
        (data / "in.csv").write_bytes((data / "tickets.csv").read_bytes())
        (data / "jobs").mkdir()
        (data / "jobs" / str(job.json()["id"])).symlink_to(outside)  # the job's own folder now points out
        retried = await p.http.post(f"/api/v1/jobs/{job.json()['id']}/retry")
        assert retried.status_code == 200
        failed = await wait_status(p.http, job.json()["id"], "failed")
        assert "not a folder an output can be written in" in failed["error"]
        await runner.aclose()
    assert upstream.stats.requests == 0
    assert victim.read_text() == "keep me\n" and (outside / "secret.csv").read_text().startswith("id,")
    assert not [name for name in os.listdir(outside) if name not in ("secret.csv", "victim.txt")]


async def test_the_output_route_serves_only_files_inside_the_folders(client: httpx.AsyncClient, database: Any,
                                                                     folders: tuple[Path, Path]) -> None:
    assert (await client.post("/api/v1/workflows", json={"yaml": spec("tickets.csv")})).status_code == 201
    job = (await client.post("/api/v1/jobs", json={"workflow": "triage"})).json()
    _, outside = folders
    async with database.session() as session:  # as if a record were tampered with
        await session.exec(update(Job).where(Job.id == job["id"]).values(output=str(outside / "secret.csv")))
        await session.commit()
    response = await client.get(f"/api/v1/jobs/{job['id']}/output")
    assert response.status_code == 404 and SECRET_LINE not in response.text


def test_the_default_data_dir_holds_none_of_the_servers_files() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings' own argument
    assert defaults.data_dir == Path("data") and exposed_server_files(defaults) == []


def test_server_files_inside_data_dir_or_a_root_are_named(tmp_path: Path) -> None:
    data, root = tmp_path / "data", tmp_path / "shared"
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{data}/rowloom.db",  # type: ignore[call-arg]
                        data_dir=data, allowed_roots=[root], secrets_file=root / "secrets.env",
                        gateway_config=tmp_path / "gateway.yaml", connections_file=data / "sub" / "connections.yaml")
    assert [problem.split(" ")[0] for problem in exposed_server_files(settings)] == [
        "DATABASE_URL", "SECRETS_FILE", "CONNECTIONS_FILE"]


@pytest.mark.parametrize("data_dir", [".", "data/.."])
def test_the_server_and_the_worker_refuse_to_start_with_env_inside_data_dir(tmp_path: Path, data_dir: str) -> None:
    """With DATA_DIR=., a CSV source could read .env and a sink overwrite the database: neither process starts."""
    (tmp_path / ".env").write_text(f"DATA_DIR={data_dir}\nDATABASE_URL=sqlite+aiosqlite:///{tmp_path}/elsewhere.db\n")
    rowloom = Path(sys.executable).with_name("rowloom")
    for command in (["serve", "--no-migrate", "--port", "1"], ["worker"]):
        ended = subprocess.run([str(rowloom), *command], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                               env={k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "DATABASE_URL")})
        assert ended.returncode != 0
        assert "refusing to start: .env (.env) is inside DATA_DIR" in ended.stderr, ended.stderr
    assert not (tmp_path / "elsewhere.db").exists()


@pytest.mark.parametrize("sink", ["../1/out.csv", "../../jobs", "/etc/out.csv", "a/../../x.csv"])
async def test_a_sink_outside_the_jobs_own_folder_is_refused_at_post(client: httpx.AsyncClient, sink: str,
                                                                     folders: tuple[Path, Path]) -> None:
    problems = _problems(await client.post("/api/v1/workflows", json={"yaml": spec("tickets.csv", sink)}))
    assert list(problems) == ["sink.path"] and "job's own folder" in problems["sink.path"]["message"]


async def test_outputs_land_in_the_jobs_own_folder_and_never_replace_an_input(
        database_url: str, folders: tuple[Path, Path]) -> None:
    data, _ = folders
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url) as p:
        first = await wait_status(p.http, await p.start_job(yaml=spec("tickets.csv", "out.csv")), "completed")
        chained = spec(f"jobs/{first['id']}/out.csv", "out.csv").replace("name: triage", "name: chained")
        assert (await p.http.post("/api/v1/workflows", json={"yaml": chained})).status_code == 201
        second = await wait_status(p.http, (await p.http.post("/api/v1/jobs", json={"workflow": "chained"})).json()[
            "id"], "completed")
        own = spec(f"jobs/{second['id'] + 1}/out.csv", "out.csv").replace("name: triage", "name: own")
        assert (await p.http.post("/api/v1/workflows", json={"yaml": own})).status_code == 201
        (data / "jobs" / str(second["id"] + 1)).mkdir()
        (data / "jobs" / str(second["id"] + 1) / "out.csv").write_bytes((data / "tickets.csv").read_bytes())
        third = await wait_status(p.http, (await p.http.post("/api/v1/jobs", json={"workflow": "own"})).json()["id"],
                                  "failed")
    assert first["output"] == f"jobs/{first['id']}/out.csv"  # named relative to DATA_DIR
    assert Path(second["output"]).parent.name == str(second["id"])  # job 1's output read, not replaced
    assert "is an input of this workflow; an output never replaces it" in third["error"]
    assert (data / "jobs" / str(third["id"]) / "out.csv").read_bytes() == (data / "tickets.csv").read_bytes()


async def test_a_folder_swapped_for_a_symlink_mid_run_does_not_redirect_the_output(
        database_url: str, folders: tuple[Path, Path]) -> None:
    """The Excel writer's child writes through the folder the run holds open, not through the path."""
    data, outside = folders
    async with FakeUpstream(latency_s=0.3) as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(yaml=spec("tickets.csv", "out.xlsx").replace("kind: csv, path: 'out",
                                                                                "kind: excel, path: 'out"))
        folder = data / "jobs" / str(job_id)
        await running_with_rows_done(p.http, job_id, rows=4)
        folder.rename(data / "moved")
        folder.symlink_to(outside)
        job = await wait_status(p.http, job_id, "completed")
    assert sorted(os.listdir(outside)) == ["secret.csv"]  # nothing was written through the symlink
    assert (data / "moved" / "out.xlsx").is_file() and job["counts"]["done"] == 27


async def test_in_output_root_a_job_replaces_only_its_own_files(database_url: str, folders: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    data, _ = folders
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "theirs.csv").write_text("not Rowloom's\n")
    shared = spec("tickets.csv", str(exports / "shared.csv"))
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=data, upstream_url=upstream.base_url,
                     output_root=exports) as p:
        first = await wait_status(p.http, await p.start_job(yaml=shared), "completed")
        again = await p.http.post(f"/api/v1/jobs/{first['id']}/retry")
        assert again.status_code == 409  # completed: nothing to retry; run the same job's twin instead
        other = await wait_status(p.http, (await p.http.post("/api/v1/jobs", json={"workflow": "triage"})).json()[
            "id"], "failed")
        theirs = spec("tickets.csv", str(exports / "theirs.csv")).replace("name: triage", "name: theirs")
        assert (await p.http.post("/api/v1/workflows", json={"yaml": theirs})).status_code == 201
        refused = await wait_status(p.http, (await p.http.post("/api/v1/jobs", json={"workflow": "theirs"})).json()[
            "id"], "failed")
    assert Path(first["output"]) == exports.resolve() / "shared.csv"
    assert "is not this job's output" in other["error"] and "is not this job's output" in refused["error"]
    assert (exports / "theirs.csv").read_text() == "not Rowloom's\n"
    assert read_csv_text(exports / "shared.csv").height == 30
