"""What the platform asks of every workflow and job it stores or runs, beyond the spec itself.

File paths resolve inside DATA_DIR or ALLOWED_ROOTS (after symlinks), and secrets appear only as references to
`${SECRET_PREFIX...}` variables, resolved when the job runs from the environment or SECRETS_FILE.
"""

from __future__ import annotations

import logging
import os
from collections import ChainMap
from collections.abc import Callable
from functools import partial

from dotenv import dotenv_values

from core.settings import Settings
from engine.sources.columns import source_column_errors
from engine.sources.mysql_connection import Connections
from engine.spec.connections import NamedConnection, connection_errors, load_connections
from engine.spec.loader import SpecCheck
from engine.spec.paths import PathPolicy, ReadLimits, path_errors
from engine.spec.secrets import Secrets, secret_errors


def path_policy(settings: Settings) -> PathPolicy:
    """Relative paths start at DATA_DIR; every path stays inside it, one of ALLOWED_ROOTS or OUTPUT_ROOT; outputs
    go to a job's own folder or OUTPUT_ROOT."""
    return PathPolicy.confined(settings.data_dir, settings.allowed_roots,
                               ReadLimits(settings.excel_max_cells, settings.reader_memory_mb << 20),
                               output_roots=[settings.output_root] if settings.output_root else [])


def spec_checks(settings: Settings) -> tuple[SpecCheck, ...]:
    """The checks a stored workflow version, a job's merged spec, and a job about to run must pass."""
    policy = path_policy(settings)
    named = operator_connections(settings)
    return (partial(path_errors, policy=policy), partial(secret_errors, prefix=settings.secret_prefix),
            partial(connection_errors, named=frozenset(named), allowed_hosts=tuple(settings.allowed_db_hosts)),
            partial(source_column_errors, policy=policy))


def operator_connections(settings: Settings) -> dict[str, NamedConnection]:
    """The database connections of CONNECTIONS_FILE (none without it); SpecError places a problem in the file."""
    if settings.connections_file is None:
        return {}
    return load_connections(settings.connections_file.read_text(encoding="utf-8"))


# Every value any job of this process resolved: log records are scrubbed against it (see SecretFilter).
RESOLVED: set[str] = set()


def _secret_values(settings: Settings) -> ChainMap[str, str]:
    from_file = {k: v for k, v in dotenv_values(settings.secrets_file).items() if v is not None} \
        if settings.secrets_file else {}
    return ChainMap(dict(os.environ), from_file)


def job_secrets(settings: Settings, values: ChainMap[str, str] | None = None) -> Secrets:
    """A resolver for one job run: the environment, then SECRETS_FILE (or `values` read from them), and only names
    with SECRET_PREFIX."""
    return Secrets(values if values is not None else _secret_values(settings), prefix=settings.secret_prefix,
                   resolved=RESOLVED, name_missing=False)


def job_connections(settings: Settings) -> Connections:
    """The databases one job may open: the operator's by name (their passwords from any variable, for them
    only), and inline ones to ALLOWED_DB_HOSTS (their passwords as the job's secrets)."""
    values = _secret_values(settings)  # SECRETS_FILE read once for both resolvers
    return Connections(job_secrets(settings, values), named=operator_connections(settings),
                       named_secrets=Secrets(values, resolved=RESOLVED, name_missing=False),
                       allowed_hosts=tuple(settings.allowed_db_hosts))


def scrub_secrets(text: str) -> str:
    """`text` with every secret any job of this process resolved replaced by ***."""
    return Secrets({}, resolved=RESOLVED).scrub(text) if RESOLVED else text


def shown_to_users(settings: Settings) -> Callable[[str], str]:
    """Text as a job's record, events and errors show it: no secret, and paths inside DATA_DIR relative to it
    (the server's own folders are nobody's business)."""
    root = os.path.realpath(settings.data_dir) + os.sep

    def show(text: str) -> str:
        return scrub_secrets(text).replace(root, "")

    return show


class SecretFilter(logging.Filter):
    """Replaces, in every record a handler emits, each secret a job resolved with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        if RESOLVED:
            scrub = scrub_secrets
            message = record.getMessage()
            if any(value in message for value in RESOLVED):
                record.msg, record.args = scrub(message), ()
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                if any(value in text for value in RESOLVED):
                    record.exc_text, record.exc_info = scrub(text), None
        return True


def configure_logging(settings: Settings) -> None:
    """Log at LOG_LEVEL, without httpx's line per upstream call, and with SecretFilter on every handler."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call drowns everything
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
