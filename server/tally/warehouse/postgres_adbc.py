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

import contextlib
import hashlib
import importlib.util
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa

from tally.core.engine import EngineSpec
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import (
    ConfigurationError,
    QueryDataError,
    QueryTimeout,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.warehouse import postgres
from tally.warehouse.adbc_types import arrow_result

PACKAGE = "adbc-driver-postgresql"
_POOL_SIZE = 8
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


class PostgresAdbcWarehouse:
    dialect = "postgres"

    def __init__(self, **conn: Any) -> None:
        self._dbapi = _driver()  # a missing driver is a configuration error now, not per query
        self.engine = ENGINE
        settings = {k: v for k, v in conn.items() if v not in (None, "")}
        self._uri = connection_uri(**settings)
        password = str(settings.get("password", ""))
        # libpq quotes a URI it cannot parse in its message: never with the password in it.
        self._secrets = [x for x in (password, quote(password, safe="")) if x]
        self._identity = hashlib.sha256(
            repr(sorted((k, str(v)) for k, v in settings.items() if k != "password")).encode()
        ).hexdigest()[:12]
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._running: set[Any] = set()
        self._stopping = threading.Event()

    # Connections --------------------------------------------------------------------------

    def _open(self) -> Any:
        try:
            return self._dbapi.connect(self._uri)  # autocommit off: each query in a transaction
        except self._dbapi.Error as e:
            message = _first_line(e)
            for secret in self._secrets:
                message = message.replace(secret, "***")
            raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {message}") from None

    def _take(self) -> tuple[Any, bool]:
        """A connection, and whether it waited in the pool (the server may have closed it)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._open(), False

    def _give_back(self, con: Any) -> None:
        """Roll back (undoing anything the query set) and keep the connection if it is still
        sound; a connection that cannot roll back is closed."""
        try:
            con.rollback()
        except Exception:  # the connection broke with its query: never reused
            _close(con)
            return
        with self._lock:
            if not self._stopping.is_set() and len(self._idle) < _POOL_SIZE:
                self._idle.append(con)
                return
        _close(con)

    # Queries ------------------------------------------------------------------------------

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if self._stopping.is_set():
            raise WarehouseUnavailable("The server is shutting down.")
        con, pooled = self._take()
        try:
            table = self._run(con, sql, timeout_seconds)
        except (self._dbapi.Error, pa.ArrowException) as e:  # a stream can fail as either
            if not (pooled and _lost(e)) or self._stopping.is_set():
                raise self._error(e, timeout_seconds) from e
            # The server closed the connection while it waited in the pool (a restart, an
            # idle timeout), most likely with the others: the query runs once more on a new
            # one, which is safe as queries cannot write.
            self.close()
            try:
                table = self._run(self._open(), sql, timeout_seconds)
            except (self._dbapi.Error, pa.ArrowException) as again:
                raise self._error(again, timeout_seconds) from again
        return arrow_result(table)

    def _run(self, con: Any, sql: str, timeout_seconds: float | None) -> pa.Table:
        try:
            cur = con.cursor()
        except BaseException:
            _close(con)
            raise
        with self._lock:
            self._running.add(cur)
        try:
            if timeout_seconds:
                # `local`: ends with the transaction, so a pooled connection keeps no timeout.
                cur.execute(f"set local statement_timeout = {int(timeout_seconds * 1000)}")
            cur.execute(sql)
            return cur.fetch_arrow_table()
        finally:
            with self._lock:
                self._running.discard(cur)
            _close(cur)  # before the connection goes back: ADBC refuses to close it otherwise
            self._give_back(con)

    def _error(self, e: BaseException, timeout_seconds: float | None) -> Exception:
        state = getattr(e, "sqlstate", None) or ""
        if state == "57014":  # query_canceled: our timeout, or interrupt() at shutdown
            if self._stopping.is_set():
                return WarehouseUnavailable("The server is shutting down.")
            return QueryTimeout(
                f"The query ran longer than {timeout_seconds or 0:g} s and was stopped."
            )
        if state.startswith("22") or state in ("42883", "42804"):
            return QueryDataError(f"PostgreSQL refused a value: {_message(e)}")
        if _lost(e) or (not state and self._stopping.is_set()):
            return WarehouseUnavailable(f"PostgreSQL is unavailable: {_message(e)}")
        return WarehouseError(f"PostgreSQL failed to run the query: {_message(e)}")

    def ping(self) -> None:
        self.execute("select 1")

    def interrupt(self) -> None:
        self._stopping.set()
        # Under the lock: a cursor is closed only after it leaves `_running`, so none is
        # cancelled after it was closed.
        with self._lock:
            for cur in self._running:
                with contextlib.suppress(Exception):  # finished meanwhile: nothing to cancel
                    cur.adbc_cancel()

    def data_version(self) -> str:
        # No cheap change signal on PostgreSQL: dbt's run_results.json says when data changed.
        return f"postgres-adbc-{self._identity}"

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for con in idle:
            _close(con)


def _lost(e: BaseException) -> bool:
    """The connection is gone: libpq's I/O failures (no SQLSTATE: the server closed it, or
    cannot be reached), connection exceptions (class 08) and the server shutting down or
    terminating the session (57P01-57P03)."""
    state = getattr(e, "sqlstate", None) or ""
    status = getattr(getattr(e, "status_code", None), "name", None)
    return status == "IO" or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _message(e: BaseException) -> str:
    """The server's own message, without the driver's prefixes ("INVALID_DATA: [libpq] Failed
    to prepare query: ERROR:  ...")."""
    line = _first_line(e)
    marker = "ERROR:"
    return line.split(marker, 1)[1].strip() if marker in line else line


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _close(thing: Any) -> None:
    with contextlib.suppress(Exception):  # already closed, or its connection broke
        thing.close()


def connect(output: Mapping[str, Any], project_dir: Path) -> PostgresAdbcWarehouse:
    """An ADBC warehouse for a dbt postgres output (the keys the psycopg2 engine reads, plus
    the SSL settings and connect_timeout libpq takes from the same output)."""
    return PostgresAdbcWarehouse(
        host=output.get("host"),
        port=output.get("port"),
        user=output.get("user"),
        password=output.get("password") or output.get("pass"),
        dbname=output.get("dbname") or output.get("database"),
        connect_timeout=output.get("connect_timeout") or 5,
        **{k: output.get(k) for k in _PASSED_THROUGH},
    )


ENGINE = EngineSpec(
    adapter_type="postgres",
    dialect="postgres",
    metricflow_engine="POSTGRES",
    metricflow_renderer="metricflow.sql.render.postgres:PostgresSQLSqlPlanRenderer",
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    # Raised as QueryDataError by SQLSTATE above (the driver's DataError class covers class 22
    # only, and importing it here would make the driver a requirement of the registry).
    data_errors=(),
    execution_path="adbc",
    # Rollups are written through psycopg2 (installed with dbt-postgres): ADBC reads.
    rollup_writer=postgres.rollup_writer,
)
