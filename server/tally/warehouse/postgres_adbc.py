"""PostgreSQL through ADBC (adbc-driver-postgresql): result sets arrive as Arrow from the wire
protocol (binary COPY), with no Python object per value.

The guarantees are the psycopg2 engine's (tally.warehouse.postgres): every query runs in a
read-only transaction at UTC with its statement timeout, and is rolled back afterwards; the
driver prepares each statement, so one query is one statement. Opening an ADBC connection
costs tens of milliseconds (the driver reads PostgreSQL's type catalogue), so connections are
pooled; the rollback after every query undoes any setting a query changed.

The driver returns NUMERIC as text. `arrow_result` turns it into the decimal type the
psycopg2 engine infers from its `Decimal` values, so a result is the same table whichever
path computed it (tally.warehouse.adbc_types).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa

from tally.errors import ConfigurationError, WarehouseUnavailable
from tally.warehouse import postgres
from tally.warehouse.adbc_types import arrow_result
from tally.warehouse.base import BaseWarehouse, Failure, close_quietly, fingerprint, first_line

PACKAGE = "adbc-driver-postgresql"
# libpq connection parameters a dbt postgres output may carry besides the address.
_PASSED_THROUGH = ("sslmode", "sslcert", "sslkey", "sslrootcert", "application_name")
# Set for the whole session, and never changed by tally: every transaction is read-only (a
# query that switches it off changes it inside its own transaction, which is rolled back).
_SESSION_OPTIONS = "-c TimeZone=UTC -c default_transaction_read_only=on"


def connection_uri(
    host: str | None = None,
    port: int | str | None = None,
    user: str | None = None,
    password: str | None = None,
    dbname: str | None = None,
    connect_timeout: int | str | None = 5,
    **extra: Any,
) -> str:
    """A libpq URI for these connection settings. Every part is percent-encoded, so a user or
    password holding `@`, `:`, `/` or `%` is read back unchanged; a socket directory (a host
    starting with `/`) goes in the query string, where libpq expects it."""
    params: dict[str, str] = {}
    netloc = ""
    if user:
        netloc = quote(str(user), safe="")
        if password:
            netloc += ":" + quote(str(password), safe="")
        netloc += "@"
    if host and str(host).startswith("/"):
        params["host"] = str(host)
    elif host:
        netloc += f"[{host}]" if ":" in str(host) else quote(str(host), safe="")
    if port:
        netloc += f":{_number('port', port)}"
    path = "/" + quote(str(dbname), safe="") if dbname else "/"
    if connect_timeout:
        params["connect_timeout"] = str(_number("connect_timeout", connect_timeout))
    params.update({k: str(v) for k, v in extra.items() if k in _PASSED_THROUGH and v})
    params["options"] = _SESSION_OPTIONS
    return f"postgresql://{netloc}{path}?{urlencode(params, quote_via=quote)}"


def _number(key: str, value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"The postgres profile output's {key} is not a number: {value!r}."
        ) from None


def installed() -> bool:
    """Whether the driver can be imported (without importing it: the registry asks at start)."""
    try:
        return importlib.util.find_spec("adbc_driver_postgresql.dbapi") is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken module entry
        return False


def _driver() -> Any:
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError:
        raise ConfigurationError(
            f"The ADBC PostgreSQL driver is not installed: `pip install {PACKAGE}` beside "
            "tally, or set TALLY_EXECUTION_PATH=native to use psycopg2."
        ) from None
    return dbapi


class _Statement:
    """One query's cursor, its connection, and whether that waited in the pool."""

    __slots__ = ("con", "cur", "pooled")

    def __init__(self, con: Any, cur: Any, pooled: bool) -> None:
        self.con, self.cur, self.pooled = con, cur, pooled


class PostgresAdbcWarehouse(BaseWarehouse[_Statement]):
    name = "PostgreSQL"

    def __init__(self, **conn: Any) -> None:
        super().__init__(ENGINE)
        self._dbapi = _driver()  # a missing driver is a configuration error now, not per query
        # A result stream can fail as either.
        self.driver_errors = (self._dbapi.Error, pa.ArrowException)
        settings = {k: v for k, v in conn.items() if v not in (None, "")}
        self._uri = connection_uri(**settings)
        password = str(settings.get("password", ""))
        # libpq quotes a URI it cannot parse in its message: never with the password in it.
        self._secrets = [x for x in (password, quote(password, safe="")) if x]
        self._identity = fingerprint(settings)

    # Connections --------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            return self._dbapi.connect(self._uri)  # autocommit off: each query in a transaction
        except self._dbapi.Error as e:
            message = first_line(e)
            for secret in self._secrets:
                message = message.replace(secret, "***")
            raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {message}") from None

    def _statement(self, con: Any, pooled: bool) -> _Statement:
        try:
            return _Statement(con, con.cursor(), pooled)
        except BaseException:
            close_quietly(con)
            raise

    def _open(self) -> _Statement:
        con = self._pooled()
        if con is not None:
            return self._statement(con, True)
        return self._statement(self._connect(), False)

    def _close(self, conn: _Statement, reusable: bool) -> None:
        """Roll back (undoing anything the query set) and keep the connection if it is still
        sound, whether its query failed or not: no cancel of the watchdog's can be on its way
        (PostgreSQL enforces the time limit), and one that cannot roll back is closed."""
        close_quietly(conn.cur)  # before the connection goes back: ADBC refuses to close it else
        try:
            conn.con.rollback()
        except Exception:  # the connection broke with its query: never reused
            close_quietly(conn.con)
            return
        if not self._give_back(conn.con):
            close_quietly(conn.con)

    # Queries ------------------------------------------------------------------------------

    def _watched(self, conn: _Statement, timeout_seconds: float | None) -> float | None:
        return None  # statement_timeout, set in the query's transaction

    def _run(self, conn: _Statement, sql: str, timeout_seconds: float | None) -> pa.Table:
        try:
            table = self._fetch(conn.cur, sql, timeout_seconds)
        except self.driver_errors as e:
            if not (conn.pooled and _lost(e)) or self._stopping.is_set():
                raise
            # The server closed the connection while it waited in the pool (a restart, an
            # idle timeout), most likely with the others: the query runs once more on a new
            # one, which is safe as queries cannot write.
            self.close()
            fresh = self._statement(self._connect(), False)
            with self._lock:  # interrupt() cancels the new cursor from now on, not the old
                old = _Statement(conn.con, conn.cur, True)
                conn.con, conn.cur, conn.pooled = fresh.con, fresh.cur, False
            close_quietly(old.cur)
            close_quietly(old.con)
            table = self._fetch(conn.cur, sql, timeout_seconds)
        return arrow_result(table)

    def _fetch(self, cur: Any, sql: str, timeout_seconds: float | None) -> pa.Table:
        if timeout_seconds:
            # `local`: ends with the transaction, so a pooled connection keeps no timeout.
            cur.execute(f"set local statement_timeout = {int(timeout_seconds * 1000)}")
        cur.execute(sql)
        return cur.fetch_arrow_table()

    def _cancel(self, conn: _Statement) -> None:
        conn.cur.adbc_cancel()

    def _classify(self, e: BaseException) -> Failure | None:
        state = getattr(e, "sqlstate", None) or ""
        if state == "57014":  # query_canceled: our timeout, or interrupt() at shutdown
            return Failure.CANCELLED
        if state.startswith("22") or state in ("42883", "42804"):
            return Failure.DATA
        if _lost(e):
            return Failure.UNAVAILABLE
        return None

    def _message(self, e: BaseException) -> str:
        """The server's own message, without the driver's prefixes ("INVALID_DATA: [libpq]
        Failed to prepare query: ERROR:  ...")."""
        line = first_line(e)
        marker = "ERROR:"
        return line.split(marker, 1)[1].strip() if marker in line else line

    def data_version(self) -> str:
        # No cheap change signal on PostgreSQL: dbt's run_results.json says when data changed.
        return f"postgres-adbc-{self._identity}"


def _lost(e: BaseException) -> bool:
    """The connection is gone: libpq's I/O failures (no SQLSTATE: the server closed it, or
    cannot be reached), connection exceptions (class 08) and the server shutting down or
    terminating the session (57P01-57P03)."""
    state = getattr(e, "sqlstate", None) or ""
    status = getattr(getattr(e, "status_code", None), "name", None)
    return status == "IO" or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def connect(output: Mapping[str, Any], project_dir: Path) -> PostgresAdbcWarehouse:
    """An ADBC warehouse for a dbt postgres output (the keys the psycopg2 engine reads, plus
    the SSL settings and connect_timeout libpq takes from the same output)."""
    return PostgresAdbcWarehouse(
        **postgres.connection_settings(output),
        connect_timeout=output.get("connect_timeout") or 5,
        **{k: output.get(k) for k in _PASSED_THROUGH},
    )


# The PostgreSQL engine's facts (dialect, MetricFlow, reserved words, rollups, which are written
# through psycopg2, installed with dbt-postgres; the demo data), reached through another driver.
ENGINE = dataclasses.replace(
    postgres.ENGINE,
    connect=connect,
    # Raised as QueryDataError by SQLSTATE above (the driver's DataError class covers class 22
    # only, and importing it here would make the driver a requirement of the registry).
    data_errors=(),
    execution_path="adbc",
)
