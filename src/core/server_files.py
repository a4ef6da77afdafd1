"""The server's own files stay out of the folders that workflows may read and write.

A write key can read any file under DATA_DIR and ALLOWED_ROOTS (a CSV source) and write there (a sink), so the
database, `.env`, SECRETS_FILE, GATEWAY_CONFIG and CONNECTIONS_FILE must lie elsewhere: read, they give the
platform's secrets away; written, they take the next start over. The server and the workers refuse to start
otherwise, whether or not the file exists yet (a sink could create it).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from core.settings import ENV_FILE, Settings


def server_files(settings: Settings) -> dict[str, Path]:
    """Each file the server trusts, by the setting that names it."""
    files: dict[str, Path] = {".env": Path(ENV_FILE)}
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        files["DATABASE_URL"] = Path(url.database)
    for name in ("secrets_file", "gateway_config", "connections_file"):
        path = getattr(settings, name)
        if path is not None:
            files[name.upper()] = path
    return files


def exposed_server_files(settings: Settings) -> list[str]:
    """Why the server may not start: each of its files that lies inside DATA_DIR or an allowed root."""
    roots = [("DATA_DIR", settings.data_dir), *(("ALLOWED_ROOTS", root) for root in settings.allowed_roots),
             *([("OUTPUT_ROOT", settings.output_root)] if settings.output_root else [])]
    problems: list[str] = []
    for setting, path in server_files(settings).items():
        real = Path(os.path.realpath(path))
        for root_setting, root in roots:
            real_root = Path(os.path.realpath(root))
            if real == real_root or real_root in real.parents:
                problems.append(f"{setting} ({path}) is inside {root_setting} ({root}), where workflows may read and "
                                "write files")
    return problems


def refuse_exposed_server_files(settings: Settings) -> None:
    """Exit with the reasons when a server file lies where workflows can reach it."""
    problems = exposed_server_files(settings)
    if problems:
        raise SystemExit("refusing to start: " + "; ".join(problems) + ". Move the file out, or point DATA_DIR "
                         "(default ./data) and ALLOWED_ROOTS at folders that hold only data.")
