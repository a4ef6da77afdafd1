"""Secrets in specs: a stored workflow refers to one only as `${NAME}`, resolved when the job runs.

The platform resolves only names with its prefix (so a workflow cannot pull `${DATABASE_URL}` into a
connection) and remembers what it resolved, so that no message it records carries a secret's value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.errors import InputError
from engine.spec.models import Location, MysqlConnection, WorkflowSpec, io_sections

log = logging.getLogger(__name__)
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
HIDDEN = "***"


def secret_fields(spec: WorkflowSpec) -> list[tuple[Location, str]]:
    """Every field of a spec that holds a secret (connection passwords), with where it is."""
    fields: list[tuple[Location, str]] = []
    for section, config in io_sections(spec):
        connection = getattr(config, "connection", None)
        if isinstance(connection, MysqlConnection) and connection.password:
            fields.append(((*section, "connection", "password"), connection.password))
    return fields


def not_allowed(name: str, prefix: str) -> str:
    """Why `${name}` may not be used as a secret."""
    return f"${{{name}}}: only variables whose names start with {prefix} can be used as secrets"


def secret_errors(spec: WorkflowSpec, prefix: str) -> list[tuple[Location, str]]:
    """Secret fields that are not a single `${NAME}` reference to an allowed name (the value is never quoted)."""
    errors: list[tuple[Location, str]] = []
    for location, value in secret_fields(spec):
        match = REFERENCE.fullmatch(value)
        if match is None:
            errors.append((location, f"a secret is never stored in a workflow or job: write ${{{prefix}NAME}} and set "
                                     f"{prefix}NAME in the server's environment or SECRETS_FILE"))
        elif not match.group(1).startswith(prefix):
            errors.append((location, not_allowed(match.group(1), prefix)))
    return errors


@dataclass
class Secrets:
    """Resolves `${NAME}` references from `values`; with a prefix, only names that start with it. Without
    `name_missing` (the platform), an unset name goes to the log, not to the error (which a job record shows)."""

    values: Mapping[str, str]
    prefix: str | None = None
    resolved: set[str] = field(default_factory=set)
    name_missing: bool = True

    def resolve(self, text: str) -> str:
        """`text` with each reference filled in; InputError names a missing or refused variable, never a value."""
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if self.prefix is not None and not name.startswith(self.prefix):
                raise InputError(not_allowed(name, self.prefix))
            if name not in self.values:
                if self.name_missing:
                    raise InputError(f"the secret {name} is not set (needed by the spec)")
                log.warning("the secret %s is not set (a job needs it)", name)
                raise InputError("a secret the spec needs is not set on the server (its log names it)")
            value = self.values[name]
            if value:
                self.resolved.add(value)
            return value

        return REFERENCE.sub(fill, text)

    def scrub(self, text: str) -> str:
        """`text` with every value this resolver handed out replaced by ***."""
        for value in sorted(self.resolved, key=len, reverse=True):
            text = text.replace(value, HIDDEN)
        return text
