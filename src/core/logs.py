"""A process's logging: its level, no secret a job resolved in any line, and an outage said once."""

from __future__ import annotations

import logging

from core.job_secrets import SecretFilter
from core.outages import is_database_outage
from core.settings import Settings


class PoolResetInOutage(logging.Filter):
    """SQLAlchemy's pool logs a connection it could not roll back as it took it back, at ERROR with a traceback.
    When the database went away under it, that is the outage the process rides out and reports itself
    (`core.outages`): the line stays, as a warning without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a pool's record whose error says the database is away; keep every record."""
        error = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("sqlalchemy.pool") and error is not None and is_database_outage(error):
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error}; the database is away)"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(settings: Settings) -> None:
    """Log at LOG_LEVEL, without httpx's line per upstream call, with PoolResetInOutage and SecretFilter on every
    handler."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call drowns everything
    for handler in logging.getLogger().handlers:
        for wanted in (PoolResetInOutage, SecretFilter):  # (in this order: the demoted line is scrubbed too)
            if not any(isinstance(f, wanted) for f in handler.filters):
                handler.addFilter(wanted())
