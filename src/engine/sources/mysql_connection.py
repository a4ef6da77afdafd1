"""MySQL/MariaDB connections for the table source, the write-back sink and knowledge tables (asyncmy).

Every call has a deadline (connecting and logging in; each query), a password is never sent in clear text
unless the operator allowed it over TLS, and a failure becomes a short InputError: the class of the problem
and the server's error number, never the server's own text (which can carry data read by the query); the
detail goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncmy
from asyncmy.errors import MySQLError

from engine.errors import InputError
from engine.spec.connections import NamedConnection, TlsMode, host_allowed
from engine.spec.io_models import Connection, MysqlConnection
from engine.spec.secrets import REFERENCE, Secrets

log = logging.getLogger(__name__)
CLEARTEXT_PLUGINS = ("mysql_clear_password", "dialog")  # both hand the password over as it is


def quote(identifier: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + identifier.replace("`", "``") + "`"


class ClearTextRefused(Exception):
    """The server asked for the password in clear text, and this connection may not send it so."""


class _RefuseClearText:
    """An asyncmy auth plugin handler that answers a clear-text password request by refusing it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def authenticate(self, packet: Any) -> Any:
        raise ClearTextRefused


class Connections:
    """The database connections one run may open: the operator's by name, and inline ones where allowed.

    A named connection's password resolves with `named_secrets` (the operator's environment) and only for it; an
    inline one's with `secrets` (the job's), which never resolves a name a named connection uses.
    `allowed_hosts` None lets an inline connection reach any host (the user's own machine).
    """

    def __init__(self, secrets: Secrets, *, named: Mapping[str, NamedConnection] | None = None,
                 named_secrets: Secrets | None = None, allowed_hosts: Collection[str] | None = None) -> None:
        self.secrets = secrets
        self.named = dict(named or {})
        self.named_secrets = named_secrets or secrets
        self.allowed_hosts = allowed_hosts
        self.reserved = {m.group(1) for c in self.named.values() for m in REFERENCE.finditer(c.password)}

    def settings(self, ref: Connection) -> tuple[NamedConnection, str]:
        """The full settings of a spec's connection and how messages name it (InputError if it may not be used)."""
        if isinstance(ref, str):
            if ref not in self.named:
                raise InputError(f"no connection named {ref!r} on this server (configured: "
                                 f"{', '.join(sorted(self.named)) or 'none'})")
            return self.named[ref], f"mysql connection {ref!r}"
        if self.allowed_hosts is not None and not host_allowed(ref.host, ref.port, self.allowed_hosts):
            raise InputError("connection.host: this server connects only to the databases its operator named")
        return NamedConnection(**ref.model_dump()), f"mysql {ref.user}@{ref.host}:{ref.port}/{ref.database}"

    def _password(self, ref: Connection, config: MysqlConnection) -> str:
        if isinstance(ref, str):
            return self.named_secrets.resolve(config.password)
        if any(m.group(1) in self.reserved for m in REFERENCE.finditer(config.password)):
            raise InputError("connection.password: that secret belongs to a connection the operator named, and "
                             "resolves only inside it: write `connection: NAME`")
        return self.secrets.resolve(config.password)

    def scrub(self, text: str) -> str:
        """`text` without any secret either resolver handed out."""
        return self.named_secrets.scrub(self.secrets.scrub(text))

    async def connect(self, ref: Connection) -> MysqlSession:
        """An open session (autocommit off), or InputError naming the connection and the class of the problem."""
        config, label = self.settings(ref)
        password = self._password(ref, config)
        refuse = {} if config.allow_cleartext_password and config.tls is not TlsMode.OFF \
            else dict.fromkeys(CLEARTEXT_PLUGINS, _RefuseClearText)
        try:
            raw = await asyncio.wait_for(asyncmy.connect(
                host=config.host, port=config.port, user=config.user, password=password, database=config.database,
                charset="utf8mb4", autocommit=False, connect_timeout=config.connect_timeout_s,
                ssl=_tls_context(config), auth_plugin_map=refuse), timeout=config.connect_timeout_s)
        except ClearTextRefused:
            raise InputError(f"{label}: the server asked for the password in clear text; refused (allowed only "
                             "over TLS, by the operator: allow_cleartext_password)") from None
        except TimeoutError:
            raise InputError(f"{label}: cannot connect: no answer within {config.connect_timeout_s:g}s") from None
        except Exception as exc:  # asyncmy raises several unrelated types for refused, auth, unknown db
            log.warning("%s: cannot connect: %s", label, self.scrub(repr(exc)))
            raise InputError(f"{label}: cannot connect ({_problem_class(exc)}; details in the server log)") from None
        return MysqlSession(raw, label=label, database=config.database, timeout_s=config.query_timeout_s,
                            scrub=self.scrub)


def _tls_context(config: NamedConnection) -> ssl.SSLContext | None:
    if config.tls is TlsMode.OFF:
        return None
    context = ssl.create_default_context(cafile=str(config.tls_ca) if config.tls_ca else None)
    if config.tls is TlsMode.REQUIRED:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _problem_class(exc: BaseException) -> str:
    """A short name for what went wrong, with the server's error number when there is one (never its text)."""
    args = getattr(exc, "args", ())
    number = args[0] if args and isinstance(args[0], int) else None
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return "network error"
    kind = "refused by the server" if isinstance(exc, MySQLError) else type(exc).__name__
    return f"{kind}, error {number}" if number is not None else kind


class MysqlSession:
    """One connection: each query within the connection's deadline; errors as a short InputError."""

    def __init__(self, raw: Any, *, label: str, database: str, timeout_s: float, scrub: Any) -> None:
        self.raw = raw
        self.label = label
        self.database = database  # the schema the connection opened
        self.timeout_s = timeout_s
        self._scrub = scrub

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, timeout=self.timeout_s)
        except TimeoutError:
            raise InputError(f"{self.label}: {what} did not end within {self.timeout_s:g}s") from None
        except InputError:
            raise
        except Exception as exc:
            log.warning("%s: %s failed: %s", self.label, what, self._scrub(repr(exc)))
            raise InputError(f"{self.label}: {what} failed ({_problem_class(exc)}; details in the server log)") \
                from None

    async def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query (its snapshot ended after, so later reads see committed writes)."""
        async def run() -> list[tuple[Any, ...]]:
            async with self.raw.cursor() as cursor:
                await cursor.execute(sql, tuple(args))
                rows = list(await cursor.fetchall())
            await self.raw.commit()
            return rows

        result: list[tuple[Any, ...]] = await self._call("a query", run())
        return result

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many rows, committed."""
        async def run() -> None:
            async with self.raw.cursor() as cursor:
                await cursor.executemany(sql, rows)
            await self.raw.commit()

        await self._call("a write", run())

    async def rollback(self) -> None:
        """Undo what is not committed (a best effort: the connection may be gone)."""
        try:
            await asyncio.wait_for(self.raw.rollback(), timeout=min(self.timeout_s, 5.0))
        except Exception:  # closing follows; the server drops what was not committed
            log.debug("%s: rollback failed", self.label, exc_info=True)

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


async def table_columns(session: MysqlSession, table: str) -> list[str]:
    """The table's columns in order; InputError if there is no such table."""
    rows = await session.fetch_all("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                                   "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (session.database, table))
    if not rows:
        raise InputError(f"mysql {session.database}.{table}: no such table")
    return [row[0] for row in rows]
