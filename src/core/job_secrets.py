"""The secrets and database connections of a job's run, and how text shown to users or logged is kept free of them.

A spec names secrets as `${SECRET_PREFIX...}`; they resolve when the job runs, from the environment or SECRETS_FILE.
Every value resolved in this process is remembered, so that no record, event, error or log line carries it.
"""

from __future__ import annotations

import logging
import os
from collections import ChainMap
from collections.abc import Callable

from dotenv import dotenv_values

from core.settings import Settings
from core.spec_policy import operator_connections
from engine import Connections, Secrets

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
