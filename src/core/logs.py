"""A process's logging: its level, and no secret a job resolved in any line."""

from __future__ import annotations

import logging

from core.job_secrets import SecretFilter
from core.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Log at LOG_LEVEL, without httpx's line per upstream call, and with SecretFilter on every handler."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call drowns everything
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
