"""All of Rowloom's settings, read from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ENV_FILE = ".env"  # read from the working directory


class Settings(BaseSettings):
    """Process settings; every field can be set as an environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        "sqlite+aiosqlite:///./rowloom.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or mysql+asyncmy://user:pw@host/db.",
    )
    redis_url: str | None = Field(None, description="redis://host:6379/0; unset runs jobs in process.")
    log_level: LogLevel = "INFO"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    gateway_config: Path | None = Field(
        None, description="Gateway YAML (models, channels, groups); unset: one local mock model, no key needed.")
    db_echo: bool = False
    queue_name: str = Field("rowloom:queue", min_length=1, max_length=100,
                            description="The arq queue (Redis key) jobs are offered on.")
    trace_upstream_calls: bool | None = Field(
        None, description="A span per upstream HTTP call (httpx instrumentation) in each job's trace. Unset: on "
        "when traces are exported (OTEL_TRACES_EXPORTER), since it costs ~0.3 ms CPU per call.")
    data_dir: Path = Field(
        Path("data"), description="Relative paths in workflow specs start here; job outputs without a sink path "
        "go to <data_dir>/jobs/<id>/. It may not hold the database, .env, SECRETS_FILE, GATEWAY_CONFIG or "
        "CONNECTIONS_FILE (the server refuses to start).")
    excel_max_cells: int = Field(
        20_000_000, ge=1, description="Cells an Excel sheet may span (first to last cell, as its readers allocate "
        "them); a larger sheet fails its job before it is parsed.")
    reader_memory_mb: int = Field(
        4096, ge=256, description="Memory of the child process that parses an Excel workbook; a workbook that needs "
        "more fails its job, and the API or worker that opened it goes on.")
    max_crashed_attempts: int = Field(
        2, ge=1, description="A job whose worker died this many times while running it (its lease expired) fails "
        "instead of being re-queued again: an input that crashes its reader cannot loop.")
    estimate_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="An estimate reads the job's source within this many seconds, or answers "
        "422 naming the source (a database that does not answer holds no request longer).")
    estimate_processes: int = Field(
        1, ge=0, le=64, description="Estimates run in this many processes beside the API, at most this many at "
        "once (the rest wait), so a big one holds up no other request; 0: one at a time in a thread of the API.")
    db_outage_s: float = Field(
        90.0, ge=0, le=86400, description="A worker rides out a database outage this long: its writes and reads "
        "are tried again with backoff and its jobs go on where they were. Longer, a job's run stops and the job is "
        "re-queued when the database is back (nothing is lost: it resumes from its stored rows).")
    worker_max_jobs: int = Field(4, ge=1, description="Jobs one worker (or the in-process runner) runs at once.")
    max_running_jobs: int = Field(0, ge=0, description="Running jobs across all workers; 0: no global cap.")
    job_lease_s: float = Field(
        30.0, gt=0, description="A running job whose heartbeat is older than this is re-queued by the reaper.")
    reaper_interval_s: float = Field(10.0, gt=0, description="How often the reaper looks for expired leases.")
    output_root: Path | None = Field(
        None, description="A folder besides each job's own (<DATA_DIR>/jobs/<id>/) that file sinks may write to, "
        "named by absolute paths inside it; a job replaces there only the files it wrote itself.")
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders besides DATA_DIR that workflow and job file paths may name "
        "(comma-separated); every path must resolve inside one of them after symlinks.")
    secret_prefix: str = Field(
        "ROWLOOM_SECRET_", min_length=1, description="A stored workflow refers to a secret as ${NAME}; only names "
        "starting with this are resolved, so a workflow cannot read other variables of the server's environment.")
    secrets_file: Path | None = Field(
        None, description="A file of NAME=value lines read for ${NAME} secrets (the environment wins).")
    connections_file: Path | None = Field(
        None, description="YAML of the database connections workflows may name (`connections: {warehouse: {host, "
        "port, user, password: ${VAR}, database, tls}}`), read as each job starts; see docs/security.md.")
    allowed_db_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts a workflow may name in an inline database connection "
        "(comma-separated `host` or `host:port`); none by default: workflows name the operator's connections.")
    auth_required: bool = Field(
        True, description="Every route but /ping and /health needs an API key. Turning it off is refused unless "
        "API_HOST is a loopback address.")
    metrics_public: bool = Field(False, description="Serve /metrics without a key (for a scraper on a private "
                                                   "network); otherwise it needs an admin key.")
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="The names this server answers to in the Host header (comma-separated; "
        "`*.example.com` for a domain); unset: any. With AUTH_REQUIRED=false only localhost and loopback addresses "
        "are served, whatever this says (a page elsewhere could otherwise reach the API by DNS rebinding).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed to call the API (comma-separated); none by "
        "default. Cross-site form and text/plain posts are refused either way.")

    budget_timezone: str = Field("UTC", description="The time zone of daily and hourly budgets (an IANA name, "
                                 "e.g. Europe/Berlin): their windows start at its midnight and full hours.")
    budget_output_tokens: int = Field(
        4096, ge=1, description="Answer tokens a request without max_tokens holds against budgets before it is sent "
        "(its real cost is settled after; set max_tokens for a hold that is a true upper bound).")

    budget_redis_prefix: str = Field("rowloom:budget:", min_length=1, max_length=100,
                                     description="Prefix of the budget counters' Redis keys (set one per platform "
                                                 "when several share a Redis).")

    @field_validator("budget_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            if value != "UTC":  # UTC needs no time zone database
                ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Berlin)") from None
        return value

    @property
    def budget_zone(self) -> tzinfo:
        """BUDGET_TIMEZONE as a zone."""
        return UTC if self.budget_timezone == "UTC" else ZoneInfo(self.budget_timezone)

    @field_validator("allowed_roots", "cors_origins", "allowed_db_hosts", "trusted_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
