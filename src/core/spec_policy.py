"""What the platform asks of every workflow and job it stores or runs, beyond the spec itself.

File paths resolve inside DATA_DIR or ALLOWED_ROOTS (after symlinks), and secrets appear only as references to
`${SECRET_PREFIX...}` variables, resolved when the job runs from the environment or SECRETS_FILE.
"""

from __future__ import annotations

import logging
import os
from collections import ChainMap
from functools import partial

from dotenv import dotenv_values

from core.settings import Settings
from engine.sources.columns import source_column_errors
from engine.spec.loader import SpecCheck
from engine.spec.paths import PathPolicy, path_errors
from engine.spec.secrets import Secrets, secret_errors


def path_policy(settings: Settings) -> PathPolicy:
    """Relative paths start at DATA_DIR; every path stays inside it or one of ALLOWED_ROOTS."""
    return PathPolicy.confined(settings.data_dir, settings.allowed_roots)


def spec_checks(settings: Settings) -> tuple[SpecCheck, ...]:
    """The checks a stored workflow version, a job's merged spec, and a job about to run must pass."""
    policy = path_policy(settings)
    return (partial(path_errors, policy=policy), partial(secret_errors, prefix=settings.secret_prefix),
            partial(source_column_errors, policy=policy))


# Every value any job of this process resolved: log records are scrubbed against it (see SecretFilter).
RESOLVED: set[str] = set()


def job_secrets(settings: Settings) -> Secrets:
    """A resolver for one job run: the environment, then SECRETS_FILE, and only names with SECRET_PREFIX."""
    from_file = {k: v for k, v in dotenv_values(settings.secrets_file).items() if v is not None} \
        if settings.secrets_file else {}
    return Secrets(ChainMap(dict(os.environ), from_file), prefix=settings.secret_prefix, resolved=RESOLVED)


class SecretFilter(logging.Filter):
    """Replaces, in every record a handler emits, each secret a job resolved with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        if RESOLVED:
            scrub = Secrets({}, resolved=RESOLVED).scrub
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
