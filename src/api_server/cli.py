"""The `rowloom` command: serve the API, migrate the database, validate a workflow spec."""

from __future__ import annotations

import argparse
import asyncio
import sys

from api_server.settings import get_settings
from engine import cli as engine_cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rowloom` console script."""
    parser = argparse.ArgumentParser(prog="rowloom", description="Run LLM workflows over tables.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    engine_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port, migrate=not args.no_migrate, demo=args.demo, processes=args.workers)
    elif args.command == "worker":
        from worker.arq_app import run_worker

        run_worker(get_settings())
    elif args.command == "migrate":
        asyncio.run(_migrate())
    elif args.command == "validate":
        sys.exit(engine_cli.validate_command(args))
    elif args.command == "run":
        sys.exit(engine_cli.run_command(args))
    elif args.command == "import-dataflux":
        sys.exit(engine_cli.import_dataflux_command(args))


async def _migrate() -> None:
    from api_server.db.engine import create_engine
    from api_server.db.migrate import upgrade

    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print(f"database at head: {_safe_url(settings.database_url)}")


def _serve(host: str | None, port: int | None, *, migrate: bool, demo: bool, processes: int) -> None:
    import uvicorn

    from api_server.main import QueueFactory, create_app

    settings = get_settings()
    if migrate:
        asyncio.run(_migrate())
    host, port = host or settings.api_host, port or settings.api_port
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
        from worker.tracing import trace_upstream

        queue_factory = InProcessRunner
        traced = trace_upstream(settings.trace_upstream_calls)
        print("jobs run in this process (set REDIS_URL to hand them to `rowloom worker` processes)", flush=True)
    print(f"Rowloom API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    app = create_app(settings, queue_factory=queue_factory, trace_upstream=traced,
                     demo_url=f"http://{host}:{port}" if demo else None)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
