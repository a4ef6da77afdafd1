"""The `rowloom` command: serve the API, migrate the database, validate a workflow spec."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from api_server.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rowloom` console script."""
    parser = argparse.ArgumentParser(prog="rowloom", description="Run LLM workflows over tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="migrate the database and serve the API")
    serve.add_argument("--host", help="default: API_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default: API_PORT (8000)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    validate = commands.add_parser("validate", help="check a workflow YAML file without running it")
    validate.add_argument("spec", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port, migrate=not args.no_migrate)
    elif args.command == "migrate":
        asyncio.run(_migrate())
    elif args.command == "validate":
        sys.exit(_validate(args.spec))


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


def _validate(path: Path) -> int:
    from engine.spec import SpecError, load_spec

    try:
        loaded = load_spec(path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except SpecError as exc:
        for issue in exc.issues:
            print(f"{path}:{issue}", file=sys.stderr)
        return 1
    print(f"{path}: valid workflow spec (sha256 {loaded.sha256[:12]})")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
