"""`rowloom serve`, `rowloom worker` and `rowloom migrate`: the platform, composed from its packages."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from functools import partial

from core.settings import Settings, get_settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `serve`, `migrate` and `worker` on the `rowloom` parser."""
    serve = commands.add_parser("serve", help="migrate the database and serve the API")
    serve.add_argument("--host", help="default: API_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default: API_PORT (8000)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    serve.add_argument("--demo", action="store_true", help="run a demo job (mock model) once the API is up")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="server processes sharing the port (N > 1 needs REDIS_URL: the gateway's limits and "
                       "the jobs are then shared through Redis)")
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    commands.add_parser("worker", help="run an arq worker (needs REDIS_URL) that runs queued jobs")


def serve_command(args: argparse.Namespace) -> int:
    """`rowloom serve`."""
    serve(args.host, args.port, migrate_first=not args.no_migrate, demo=args.demo, processes=args.workers)
    return 0


def worker_command(args: argparse.Namespace) -> int:
    """`rowloom worker`."""
    from core.server_files import refuse_exposed_server_files
    from worker.arq_app import run_worker

    settings = get_settings()
    refuse_exposed_server_files(settings)
    run_worker(settings)
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    """`rowloom migrate`."""
    asyncio.run(migrate(get_settings()))
    return 0


async def migrate(settings: Settings) -> None:
    """Bring the configured database to the newest revision."""
    from core.db.engine import create_engine
    from core.db.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print(f"database at head: {_safe_url(settings.database_url)}")


def serve(host: str | None, port: int | None, *, migrate_first: bool = True, demo: bool = False,
          processes: int = 1) -> None:
    """Serve the API; without REDIS_URL jobs run in this process, with it they go to `rowloom worker`."""
    import uvicorn

    from api_server.main import BackgroundTask, QueueFactory, create_app
    from core.server_files import refuse_exposed_server_files
    from core.telemetry import trace_upstream

    settings = get_settings()
    refuse_exposed_server_files(settings)
    host, port = host or settings.api_host, port or settings.api_port
    if not settings.auth_required and not is_loopback(host):
        sys.exit(f"AUTH_REQUIRED=false is refused on {host}: without keys anyone who reaches the port could use "
                 "the API; serve on 127.0.0.1, or keep keys on")
    if migrate_first:
        asyncio.run(migrate(settings))
    demo_key = asyncio.run(prepare_keys(settings, demo=demo))
    if processes > 1:
        if not settings.redis_url:
            sys.exit("rowloom serve --workers N needs REDIS_URL: without it each process would keep its own rate "
                     "limits (N times the configured rates) and run jobs on its own")
        print(f"Rowloom API on http://{host}:{port} in {processes} processes; jobs go to `rowloom worker`",
              flush=True)
        uvicorn.run("api_server.main:create_app", factory=True, workers=processes, host=host, port=port,
                    log_level=settings.log_level.lower())
        return
    queue_factory: QueueFactory | None = None
    traced = False
    if not settings.redis_url:  # the embedded default: jobs run inside this process
        from worker.inprocess import InProcessRunner

        queue_factory = InProcessRunner
        traced = trace_upstream(settings.trace_upstream_calls)
        print("jobs run in this process (set REDIS_URL to hand them to `rowloom worker` processes)", flush=True)
    print(f"Rowloom API on http://{host}:{port}  (dashboard: http://{host}:{port}/, docs: "
          f"http://{host}:{port}/docs)", flush=True)
    background: BackgroundTask | None = None
    if demo_key is not None:
        background = partial(run_demo_once, f"http://{host}:{port}", settings, *demo_key)
    app = create_app(settings, queue_factory=queue_factory, trace_upstream=traced, background=background)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


async def prepare_keys(settings: Settings, *, demo: bool) -> tuple[int, str] | None:
    """The first start's admin key, printed once; and a key for the demo job, if asked (its id and secret)."""
    from api_server.services.keys import create_key, first_key
    from core.db import Database
    from core.models import Scope
    from core.models.api_key import ApiKeyCreate

    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            secret = await first_key(session)
            demo_key = None
            if demo:
                key, demo_secret = await create_key(session, data=ApiKeyCreate(name="serve --demo",
                                                                               scopes=[Scope.WRITE]))
                assert key.id is not None
                demo_key = (key.id, demo_secret)
    finally:
        await database.dispose()
    if secret is not None:
        print(FIRST_KEY_BANNER.format(secret=secret), flush=True)
    return demo_key


async def run_demo_once(base_url: str, settings: Settings, key_id: int, secret: str) -> None:
    """The demo job through the API with a key of its own, revoked once the demo is over."""
    from api_server.services.keys import revoke_key
    from core.db import Database
    from rowloom.demo import run_demo

    try:
        await run_demo(base_url, settings, secret)
    finally:
        database = Database(settings.database_url)
        try:
            async with database.session() as session:
                await revoke_key(session, key_id=key_id)
        finally:
            await database.dispose()


FIRST_KEY_BANNER = """
This is the first start: an admin API key was made. It is shown only now (only its hash is stored):

    {secret}

Send it as `Authorization: Bearer <key>` (curl -H "Authorization: Bearer $ROWLOOM_KEY" ...), or paste it into
Swagger's Authorize button. Make more keys with `rowloom keys create --name NAME --scope read|write|admin|gateway`.
"""


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
