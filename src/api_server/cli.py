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
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    engine_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port, migrate=not args.no_migrate)
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


def _serve(host: str | None, port: int | None, *, migrate: bool) -> None:
    import uvicorn

    from api_server.main import create_app

    settings = get_settings()
    if migrate:
        asyncio.run(_migrate())
    host, port = host or settings.api_host, port or settings.api_port
    print(f"Rowloom API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
