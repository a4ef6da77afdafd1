"""Database connections: the operator's, by name (a connections file), and the inline ones a spec may write.

A stored workflow names a connection (`connection: warehouse`) and chooses tables, columns and conditions; the
host, port, user, password and TLS of `warehouse` are the operator's, in a file the API cannot read or write.
A spec that writes a connection inline is refused on the platform unless the operator allows its host
(ALLOWED_DB_HOSTS); on the user's own machine (`rowloom run`) it is free.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.spec.base import StrictModel
from engine.spec.io_models import CONNECTION_NAME, MysqlConnection
from engine.spec.loader import load_yaml_model
from engine.spec.models import Location, WorkflowSpec, io_sections

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_QUERY_TIMEOUT_S = 300.0


class TlsMode(StrEnum):
    """How a connection uses TLS."""

    OFF = "off"  # plain TCP
    REQUIRED = "required"  # encrypted; the server's certificate is not checked
    VERIFIED = "verified"  # encrypted; the certificate must chain to `tls_ca` (or the system's CAs) and name the host


class NamedConnection(MysqlConnection):
    """A MySQL/MariaDB connection the operator configured (host, credentials and TLS stay out of every spec)."""

    kind: Literal["mysql"] = Field("mysql", description="`mysql`: a MySQL/MariaDB server.")
    password: str = Field("", description="`${NAME}`: a variable of the server's environment or SECRETS_FILE, "
                                          "resolved for this connection only (any name: the operator wrote it).")
    tls: TlsMode = Field(TlsMode.OFF, description="`off`, `required` (encrypted) or `verified` (encrypted, and the "
                                                  "certificate checked against `tls_ca` or the system's CAs).")
    tls_ca: Path | None = Field(None, description="A PEM file of the CAs that sign the server's certificate.")
    allow_cleartext_password: bool = Field(
        False, description="Answer a server that asks for the password in clear text (mysql_clear_password, "
                           "dialog: LDAP or PAM logins). Only with `tls`; off, such a login is refused.")
    connect_timeout_s: float = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0, le=600,
                                     description="Connecting and logging in must end within this many seconds.")
    query_timeout_s: float = Field(DEFAULT_QUERY_TIMEOUT_S, gt=0, le=86_400,
                                   description="Each query (a batch read, a write) must end within this many seconds.")

    @model_validator(mode="after")
    def _cleartext_needs_tls(self) -> NamedConnection:
        if self.allow_cleartext_password and self.tls is TlsMode.OFF:
            raise ValueError("allow_cleartext_password needs tls: required or verified (a password is never sent "
                             "in clear text over plain TCP)")
        return self


class ConnectionsConfig(StrictModel):
    """The operator's connections file: `connections: {name: {kind, host, port, user, password, database, ...}}`."""

    connections: dict[str, NamedConnection] = Field(
        default_factory=dict, description="Each connection by the name workflows use (`connection: NAME`).")

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data.get("connections") or {}:
                if not (isinstance(name, str) and CONNECTION_NAME.fullmatch(name)):
                    raise ValueError(f"connection name {name!r}: letters, digits, '_' and '-', starting with a letter")
        return data


def load_connections(text: str) -> dict[str, NamedConnection]:
    """The connections of an operator's file (its text); SpecError names field, line and column."""
    return load_yaml_model(ConnectionsConfig, text, what="a connections file").connections


def host_allowed(host: str, port: int, allowed: Collection[str]) -> bool:
    """Whether `host:port` is listed (an entry is `host` for any port, or `host:port`; names without case)."""
    host = host.strip("[]").lower()
    for entry in allowed:
        name, _, entry_port = entry.strip().lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
        if name.strip("[]") == host and (not entry_port or entry_port == str(port)):
            return True
    return False


def _has_port(entry: str) -> bool:
    """`host:port` and `[v6]:port` carry a port; a bare IPv6 address does not."""
    head, sep, tail = entry.strip().rpartition(":")
    return bool(sep) and tail.isdigit() and (head.endswith("]") or ":" not in head)


def connection_errors(spec: WorkflowSpec, *, named: Collection[str],
                      allowed_hosts: Collection[str] | None) -> list[tuple[Location, str]]:
    """Connections the operator did not configure, and inline ones to hosts not allowed (None: any host)."""
    errors: list[tuple[Location, str]] = []
    for section, config in io_sections(spec):
        connection = getattr(config, "connection", None)
        where: Location = (*section, "connection")
        if isinstance(connection, str) and connection not in named:
            errors.append((where, f"no connection named {connection!r} on this server (configured: "
                                  f"{', '.join(sorted(named)) or 'none'})"))
        elif isinstance(connection, MysqlConnection) and allowed_hosts is not None \
                and not host_allowed(connection.host, connection.port, allowed_hosts):
            errors.append(((*where, "host"), "this server connects only to the databases its operator named: write "
                                             "`connection: NAME` (a configured connection), or ask the operator to "
                                             "allow the host (ALLOWED_DB_HOSTS)"))
    return errors
