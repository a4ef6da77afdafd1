"""What the platform asks of every workflow and job it stores or runs, beyond the spec itself.

File paths resolve inside DATA_DIR or ALLOWED_ROOTS (after symlinks), and secrets appear only as references to
`${SECRET_PREFIX...}` variables, resolved when the job runs from the environment or SECRETS_FILE.
"""

from __future__ import annotations

import os
from collections import ChainMap
from functools import partial

from dotenv import dotenv_values

from core.settings import Settings
from engine.spec.loader import SpecCheck
from engine.spec.paths import PathPolicy, path_errors
from engine.spec.secrets import Secrets, secret_errors


def path_policy(settings: Settings) -> PathPolicy:
    """Relative paths start at DATA_DIR; every path stays inside it or one of ALLOWED_ROOTS."""
    return PathPolicy.confined(settings.data_dir, settings.allowed_roots)


def spec_checks(settings: Settings) -> tuple[SpecCheck, ...]:
    """The checks a stored workflow version, a job's merged spec, and a job about to run must pass."""
    return (partial(path_errors, policy=path_policy(settings)), partial(secret_errors, prefix=settings.secret_prefix))


def job_secrets(settings: Settings) -> Secrets:
    """A resolver for one job run: the environment, then SECRETS_FILE, and only names with SECRET_PREFIX."""
    from_file = {k: v for k, v in dotenv_values(settings.secrets_file).items() if v is not None} \
        if settings.secrets_file else {}
    return Secrets(ChainMap(dict(os.environ), from_file), prefix=settings.secret_prefix)
