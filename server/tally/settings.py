"""One settings class. Every value resolves argument -> environment (TALLY_*) -> default; the
dbt project, profile and manifest are then found the way dbt finds them (tally.project)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tally.errors import ConfigurationError
from tally.project import find_profiles_dir, find_project_dir, read_project


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore", frozen=True)

    project_dir: Path | None = Field(
        None,
        description="The dbt project folder (default: DBT_PROJECT_DIR, the current folder if "
        "it holds dbt_project.yml, else ./dbt_project).",
    )
    profiles_dir: Path | None = Field(
        None,
        description="Folder of profiles.yml (default: DBT_PROFILES_DIR, the project folder, "
        "~/.dbt).",
    )
    target: str | None = Field(
        None, description="dbt profile target (default: DBT_TARGET, then the profile's)."
    )
    manifest_path: Path | None = Field(
        None,
        description="semantic_manifest.json (default: in dbt's target path: DBT_TARGET_PATH or "
        "the project's target-path, else target/).",
    )
    max_rows: int = Field(100_000, ge=1, description="Most rows a query may return.")
    mcp_max_rows: int = Field(
        500, ge=1, description="Most rows an MCP tool shows an agent (it says when it cuts)."
    )
    query_timeout_seconds: float = Field(60.0, gt=0, description="Per-query warehouse timeout.")
    cache_enabled: bool = Field(True, description="Serve repeated queries from memory.")
    cache_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="L1 cache size (Arrow bytes)."
    )
    cache_ttl_seconds: float = Field(
        300.0, ge=0, description="Default time a result is served from cache."
    )
    execution_path: Literal["auto", "native", "adbc", "dbt-adapter"] = Field(
        "auto",
        description="How queries reach the warehouse: auto (the engine's ADBC driver when tally "
        "has an ADBC path and the driver is installed, else its own driver, else the installed "
        "dbt adapter), native (the engine's own driver: psycopg2 for PostgreSQL), adbc (the "
        "ADBC driver; PostgreSQL only) or dbt-adapter (always the dbt adapter).",
    )
    cache_url: str | None = Field(
        None,
        description="A Redis URL (redis://host:6379/0) shared by several replicas: results, "
        "single flight and invalidations are shared through it; unset: in-process only.",
    )
    cache_prefix: str = Field(
        "tally", min_length=1, description="Prefix of every Redis key (one per deployment)."
    )
    cache_local_max_bytes: int = Field(
        64 * 1024 * 1024, ge=0,
        description="With a shared cache: size of the in-process tier in front of it.",
    )
    cache_local_ttl_seconds: float = Field(
        10.0, ge=0, description="With a shared cache: longest an entry stays in-process."
    )
    cache_lease_seconds: float = Field(
        30.0, gt=0,
        description="With a shared cache: how long a replica running a query holds it for "
        "the others (they wait on its result); a replica that dies blocks no longer.",
    )
    cache_retry_seconds: float = Field(
        1.0, gt=0, description="With a shared cache: pause before asking a Redis that failed."
    )
    rate_limit_per_minute: int = Field(
        600,
        ge=0,
        description="Requests a minute per API key or token subject (429 with Retry-After "
        "beyond, bursts of a tenth of it); 0: no limit. Anonymous callers of an open "
        "(loopback) server are not limited.",
    )
    graphql_max_costly_fields: int = Field(
        10,
        ge=1,
        description="Root fields that run a query, create a job or compile SQL allowed in one "
        "GraphQL document (query, createQuery, compileSql...); each after the first also "
        "takes a request from the caller's rate limit.",
    )
    max_concurrent_per_caller: int = Field(
        8,
        ge=0,
        description="Warehouse queries one key or token subject may have running at once "
        "(429 beyond; identical queries share one); 0: no limit.",
    )
    stale_if_error_seconds: float = Field(
        86400.0,
        ge=0,
        description="When the warehouse is down or too slow, serve the last answer to the "
        "same question if it is at most this old (flagged stale); 0: never.",
    )
    rollups_enabled: bool = Field(
        True, description="Answer queries from built rollups when that gives the same numbers."
    )
    query_workers: int = Field(8, ge=1, description="Threads running warehouse queries.")
    loop_result_max_bytes: int = Field(
        32 * 1024,
        ge=0,
        description="Largest cached result (Arrow bytes) the event loop shapes and encodes "
        "itself; larger hits are encoded in the query thread pool.",
    )
    max_connections: int = Field(
        1024, ge=1, description="Connections (and their requests) the HTTP server serves at "
        "once; more are answered 503 at once, so that no flood of connections takes the "
        "server's memory or file descriptors from the callers already served."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1, description="Largest request body accepted (413 above it)."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="When set, admin routes (/api/v1/cache...) need "
        "`Authorization: Bearer <token>`; unset: they are open.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="Shared secret of HS256 JWT bearer tokens; setting it turns JWT "
        "authentication on (never in a file of the repository).",
    )
    embed_secret: SecretStr | None = Field(
        None,
        description="Secret that signs embed tokens; set the same one on every replica "
        "(default: derived from TALLY_JWT_SECRET, else one per process).",
    )
    metrics_token: SecretStr | None = Field(
        None, description="A token for GET /metrics (`Authorization: Bearer <token>`). /metrics "
        "takes it or a caller with the admin scope; it is open only on a server without "
        "authentication (loopback) and without this token."
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection must send a request's headers within this long."
    )
    body_timeout_seconds: float = Field(
        30.0, ge=0, description="The whole request body must arrive within this long of the "
        "server's first read of it, however it trickles (408 beyond); 0: off."
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (product dashboards), "
        'e.g. ["https://app.example.com"]; empty: none.',
    )
    job_workers: int = Field(
        4, ge=1, description="Asynchronous queries (GraphQL createQuery, POST /api/v1/queries) "
        "running at once; the others wait, PENDING."
    )
    job_retention_seconds: float = Field(
        600.0, ge=0, description="How long a finished asynchronous query's result is kept."
    )
    job_max_held: int = Field(
        1000, ge=1, description="Most asynchronous queries held at once (running, waiting or "
        "finished and kept); beyond it, finished ones of the caller holding the most are "
        "forgotten first, and a query is refused (429 too_many_queries) only when none is."
    )
    job_max_per_caller: int = Field(
        100, ge=1, description="Most asynchronous queries one key or token subject may hold "
        "at once (429 too_many_queries beyond), so that no caller fills the server's table."
    )
    job_max_running_per_caller: int = Field(
        2, ge=1, description="Asynchronous queries of one caller running at once; its others "
        "wait, PENDING, behind other callers' queries."
    )
    job_results_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Bytes of finished asynchronous results held in "
        "memory, all callers together; beyond it, the oldest results of the caller holding the "
        "most are forgotten (their ids then answer query_expired)."
    )
    job_results_max_bytes_per_caller: int = Field(
        64 * 1024 * 1024, ge=0, description="Bytes of finished asynchronous results one caller "
        "may hold; its oldest results are forgotten to make room, and a single larger result "
        "fails with result_too_large (export it instead)."
    )
    embed_fanout: int = Field(
        4, ge=1, description="The embed tokens of one minting key (each with a subject of "
        "its own) together get at most this many times each per-caller limit: requests a "
        "minute, queries at once, asynchronous queries held and their result bytes."
    )
    max_filter_values: int = Field(
        1000, ge=1, description="Most values in one structured filter (an `in` list); more "
        "are refused with 400 invalid_filter."
    )
    max_filter_bytes: int = Field(
        64 * 1024, ge=1, description="Largest total size of a request's filters (their text "
        "and values); larger is refused with 400 invalid_filter."
    )
    dbt_environment_id: int | None = Field(
        None, description="The dbt Semantic Layer environment id this server answers to "
        "(GraphQL environmentId, Flight's environmentid header); unset: any id."
    )
    flight_port: int | None = Field(
        None, ge=1, le=65535, description="Serve Arrow Flight SQL (the dbt Semantic Layer's "
        "JDBC/ADBC protocol) on this port; unset: off."
    )
    pg_port: int | None = Field(
        None, ge=1, le=65535, description="Serve the PostgreSQL wire protocol (SQL over "
        "metrics for psql, JDBC, BI tools) on this port; unset: off."
    )
    pg_tls_cert: Path | None = Field(
        None, description="PEM certificate for the PostgreSQL endpoint's TLS (sslmode=require)."
    )
    pg_tls_key: Path | None = Field(None, description="PEM private key for pg_tls_cert.")
    pg_max_connections: int = Field(
        100, ge=1, description="PostgreSQL connections at once; more are refused (53300)."
    )
    pg_idle_timeout_seconds: float = Field(
        3600.0, gt=0, description="A PostgreSQL connection idle this long is closed."
    )
    pg_statement_timeout_seconds: float | None = Field(
        None, gt=0, description="A SQL statement running longer is cancelled (57014); unset: "
        "the warehouse's query time limit."
    )
    # What the Flight SQL server holds between calls (tally.flight.state): each caller has a
    # share, and a caller over its share loses its own oldest entries, never another's.
    flight_pending_results: int = Field(
        256, ge=1, description="Flight SQL results waiting for their DoGet, of all callers "
        "(each is read once, or dropped after 5 minutes)."
    )
    flight_pending_results_per_caller: int = Field(
        64, ge=1, description="Flight SQL results one caller (key or token subject) may have "
        "waiting for their DoGet; beyond, its own oldest are dropped."
    )
    flight_pending_results_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="Arrow bytes of all Flight SQL results waiting "
        "for their DoGet."
    )
    flight_pending_results_bytes_per_caller: int = Field(
        128 * 1024 * 1024, ge=1, description="Arrow bytes of one caller's Flight SQL results "
        "waiting for their DoGet (its own oldest dropped beyond; a larger result is refused "
        "with result_too_large)."
    )
    flight_prepared_statements: int = Field(
        10_000, ge=1, description="Flight SQL prepared statements held, of all callers."
    )
    flight_prepared_statements_per_caller: int = Field(
        1_000, ge=1, description="Flight SQL prepared statements one caller may hold; beyond, "
        "its own oldest are closed."
    )
    flight_sessions: int = Field(
        10_000, ge=1, description="Flight SQL sessions held, of all callers."
    )
    flight_sessions_per_caller: int = Field(
        1_000, ge=1, description="Flight SQL sessions one caller may hold; beyond, its own "
        "oldest are closed."
    )
    dashboard_assets_dir: Path | None = Field(
        None, description="The built dashboard components (JavaScript) served at "
        "/dashboards/assets/ (default: clients/dashboard/dist of the source checkout, built by "
        "`make dashboard-build`)."
    )
    # Refresh, monitors and notifications (tally.refresh, tally.monitor, tally.notify).
    as_of_date: dt.date | None = Field(
        None, description="The day monitors treat as the latest complete one (default: the "
        "dbt project's `as_of_date` var, else yesterday)."
    )
    monitor_interval: float = Field(
        0.0, ge=0, description="Seconds between the server's monitor runs (they also run "
        "after each refresh); 0: only after refreshes."
    )
    warm_on_start: bool = Field(
        False, description="Warm the cache when the server starts (saved queries marked "
        "`warm: true`, dashboards, frequent shapes of the query history)."
    )
    warm_history_shapes: int = Field(
        20, ge=0, description="After a refresh, warm the cache with this many of the most "
        "frequent query shapes of the last 24 hours (query history)."
    )
    history_max_shapes: int = Field(
        1000, ge=10, description="Query shapes kept in the query history (least recently "
        "seen dropped first)."
    )
    server_url: str | None = Field(
        None, description="A running tally server that `tally build` asks to refresh (swap "
        "in, invalidate, warm, monitor) after its build, e.g. http://127.0.0.1:8080; it "
        "authenticates with TALLY_ADMIN_TOKEN."
    )
    webhook_max_attempts: int = Field(4, ge=1, description="Attempts per webhook delivery.")
    webhook_backoff_seconds: float = Field(
        1.0, ge=0, description="Wait before the first retry of a delivery, doubled each time."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Per delivery attempt.")
    smtp_host: str | None = Field(None, description="SMTP server for email notifications.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field("tally@localhost", description="From address of notifications.")
    smtp_user: str | None = Field(
        None, description="SMTP login (with TALLY_SMTP_PASSWORD); unset: no login."
    )
    smtp_password: SecretStr | None = Field(None, description="Password of TALLY_SMTP_USER.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    host: str = Field(
        "127.0.0.1", description="Address `tally serve` listens on (--host). Without "
        "authentication it serves only on a loopback address (see --insecure)."
    )
    port: int = Field(8080, ge=1, le=65535, description="HTTP port of `tally serve` (--port).")

    def resolved_project_dir(self) -> Path:
        return find_project_dir(self.project_dir)

    def resolved_profiles_dir(self) -> Path:
        return find_profiles_dir(self.resolved_project_dir(), self.profiles_dir)

    def resolved_target_path(self) -> Path:
        """dbt's output folder: where `dbt parse` writes the manifests."""
        return read_project(self.resolved_project_dir(), self.profiles_dir, self.target).target_path

    def resolved_manifest_path(self) -> Path:
        if self.manifest_path is not None:
            return self.manifest_path.expanduser().resolve()
        return self.resolved_target_path() / "semantic_manifest.json"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (non-None) arguments taking precedence. A
    bad value is one line naming the setting, its flag or variable, and what it must be."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise ConfigurationError(_one_line(e)) from None


def _one_line(e: ValidationError) -> str:
    problems = []
    for err in e.errors(include_url=False):
        field = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        flag = f"--{field.replace('_', '-')} or TALLY_{field.upper()}"
        given = err.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        problems.append(f"setting {field} ({flag}): {err.get('msg', 'invalid')}{shown}")
    return "Bad " + "; ".join(problems[:3]) + "."
