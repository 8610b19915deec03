"""What every warehouse engine shares, written once: the queries running now (so that
`interrupt()` reaches them), the stopping flag, the time limit through the deadline watchdog,
the ladder from a driver's exception to tally's errors, a pool of idle connections, `ping()`,
`close()`, and `stream()` for an engine that cannot stream. An engine subclasses
`BaseWarehouse` and writes only what is its own: how a query gets its connection (or cursor,
or Spark job group) and gives it back, how SQL runs to Arrow, how a running query is
cancelled, and what its driver's errors mean.

One query through `execute`:

    refused at once while stopping
    -> _open()                   a connection of the engine's ("C"), registered as running
    -> _run(c, sql, timeout)     under the time limit: the watchdog calls _cancel(c) when it
                                 passes, unless the database enforces the limit (_watched)
    -> unregistered, _close(c, reusable)

A driver's exception becomes, in this order: WarehouseUnavailable when the server is shutting
down; QueryTimeout when the limit passed (the watchdog fired, or the database cancelled the
query under its own limit); QueryDataError when the engine classifies it as a value the
warehouse refused (by default: one of the spec's `data_errors`); WarehouseUnavailable when the
connection is gone; otherwise WarehouseError.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa

from tally.core import cancel
from tally.core.engine import EngineSpec
from tally.errors import (
    QueryCancelled,
    QueryDataError,
    QueryTimeout,
    TallyError,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.warehouse.deadlines import WATCHDOG

log = logging.getLogger("tally.warehouse")

SHUTTING_DOWN = "The server is shutting down."

#: What one query runs on: a cursor, a connection, a Spark job group.
C = TypeVar("C")


class Failure(Enum):
    """What a driver's exception means, as an engine classifies it (`_classify`)."""

    #: The database stopped the query (under its own time limit, or at interrupt()).
    CANCELLED = "cancelled"
    #: A value or type in the query the warehouse refused: the caller's, when the caller
    #: wrote the values.
    DATA = "data"
    #: The connection is gone, or the warehouse cannot be reached.
    UNAVAILABLE = "unavailable"


class BaseWarehouse(ABC, Generic[C]):
    """The `Warehouse` protocol (tally.core.engine) over an engine's hooks."""

    #: How messages name the warehouse ("DuckDB refused a value: ...").
    name: str
    #: The driver's exceptions that `execute` turns into tally's errors; anything else raised
    #: while a query runs is a bug and propagates as it is.
    driver_errors: tuple[type[BaseException], ...] = (Exception,)
    #: Idle connections kept for the next queries (`_pooled`, `_give_back`).
    pool_size: ClassVar[int] = 8

    def __init__(self, engine: EngineSpec) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._lock = threading.Lock()
        self._running: set[C] = set()
        self._idle: list[Any] = []
        self._stopping = threading.Event()

    # The engine's own ------------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> C:
        """What the next query runs on (a new or pooled connection, a cursor). Raises tally's
        errors (WarehouseUnavailable when the warehouse cannot be reached) or the driver's."""

    @abstractmethod
    def _run(self, conn: C, sql: str, timeout_seconds: float | None) -> pa.Table:
        """Run one read-only query on `conn` and return its rows as Arrow."""

    @abstractmethod
    def _cancel(self, conn: C) -> None:
        """Stop the query running on `conn` now (from another thread: the watchdog's, or the
        one shutting the server down)."""

    @abstractmethod
    def _close(self, conn: C, reusable: bool) -> None:
        """The query on `conn` has ended: give it back, or close it. `reusable` is False after
        an error, and after the time limit fired (its cancel may still be on its way)."""

    @abstractmethod
    def data_version(self) -> str:
        """A token that changes whenever the data may have changed (a rebuild)."""

    def _watched(self, conn: C, timeout_seconds: float | None) -> float | None:
        """The time limit the watchdog enforces by calling `_cancel`: None where the database
        enforces it itself (PostgreSQL's statement_timeout) or the driver cannot cancel."""
        return timeout_seconds

    def _classify(self, e: BaseException) -> Failure | None:
        """What a driver's exception means; None: the warehouse failed to run the query."""
        return Failure.DATA if isinstance(e, self.engine.data_errors) else None

    def _message(self, e: BaseException) -> str:
        """The driver's message, as an error of tally's quotes it."""
        return first_line(e)

    # Shared ------------------------------------------------------------------------------------

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        scope = cancel.CURRENT.get()
        if scope is None:
            return self._execute(sql, timeout_seconds)
        if scope.cancelled:
            raise QueryCancelled("canceling statement due to user request")
        try:
            return self._execute(sql, timeout_seconds, scope)
        except TallyError:
            if scope.cancelled:
                raise QueryCancelled("canceling statement due to user request") from None
            raise

    def _execute(self, sql: str, timeout_seconds: float | None,
                 scope: cancel.CancelScope | None = None) -> pa.Table:
        conn = self._begin()
        reusable = False
        try:
            with scope.watch(self._cancel_callback(conn)) if scope is not None \
                    else contextlib.nullcontext():
                table, reusable = self._limited(conn, sql, timeout_seconds)
            # A cancel from the scope may still be on its way: that connection is not reused.
            reusable = reusable and (scope is None or not scope.cancelled)
        finally:
            self._end(conn, reusable)
        return table

    def _cancel_callback(self, conn: C) -> Callable[[], None]:
        def stop() -> None:
            with self._lock:  # as interrupt(): only a connection still running its query
                if conn in self._running:
                    self._cancel(conn)

        return stop

    def _limited(self, conn: C, sql: str, timeout_seconds: float | None
                 ) -> tuple[pa.Table, bool]:
        """The result under the time limit, and whether the connection may be reused."""
        limit = self._watched(conn, timeout_seconds)
        if not limit:  # none, or the database's own: no deadline to keep (~10 us saved)
            return self._attempt(conn, sql, timeout_seconds, None), True
        with WATCHDOG.limit(limit, lambda: self._cancel(conn)) as fired:
            table = self._attempt(conn, sql, timeout_seconds, fired)
        # After the block a cancel is either due (`fired`: it may still be on its way) or will
        # never come: only a connection no cancel can reach is reused.
        return table, not fired.is_set()

    def _attempt(
        self, conn: C, sql: str, timeout_seconds: float | None, fired: threading.Event | None
    ) -> pa.Table:
        try:
            return self._run(conn, sql, timeout_seconds)
        except TallyError:
            raise
        except self.driver_errors as e:
            timed_out = fired is not None and fired.is_set()
            raise self._error(e, timed_out, timeout_seconds) from e

    def stream(self, sql: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The whole result, cut into batches: for an engine whose driver cannot hand a result
        over in parts (an engine that can overrides this: DuckDB)."""
        table = self.execute(sql)
        yield from table.to_batches(batch_rows) or [
            pa.RecordBatch.from_pylist([], schema=table.schema)
        ]

    def ping(self) -> None:
        self.execute("select 1")

    def interrupt(self) -> None:
        self._stopping.set()
        # Under the lock: a query leaves `_running` before its connection is closed or given
        # back (`_end`), so no cancel reaches a connection another query uses, or a closed one.
        with self._lock:
            for conn in self._running:
                try:
                    self._cancel(conn)
                except Exception:  # best effort while shutting down; it may have just ended
                    log.debug("could not cancel a running query", exc_info=True)

    def close(self) -> None:
        """Close the idle connections; a query still running closes its own when it ends."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            close_quietly(conn)

    # For the engines ---------------------------------------------------------------------------

    def _begin(self) -> C:
        """A connection for one query, registered as running (refused while stopping)."""
        if self._stopping.is_set():
            raise WarehouseUnavailable(SHUTTING_DOWN)
        try:
            conn = self._open()
        except TallyError:
            raise
        except self.driver_errors as e:
            raise self._error(e) from e
        with self._lock:
            self._running.add(conn)
        return conn

    def _end(self, conn: C, reusable: bool) -> None:
        with self._lock:
            self._running.discard(conn)
        self._close(conn, reusable)

    def _error(
        self, e: BaseException, timed_out: bool = False, timeout_seconds: float | None = None
    ) -> TallyError:
        """The error of tally's a driver's exception is raised as (the module's docstring)."""
        if self._stopping.is_set():
            return WarehouseUnavailable(SHUTTING_DOWN)
        failure = self._classify(e)
        if timed_out or (failure is Failure.CANCELLED and timeout_seconds):
            return QueryTimeout(
                f"The query ran longer than {timeout_seconds or 0:g} s and was stopped."
            )
        message = self._message(e)
        if failure is Failure.DATA:
            return QueryDataError(f"{self.name} refused a value: {message}")
        if failure is Failure.UNAVAILABLE:
            return WarehouseUnavailable(f"{self.name} is unavailable: {message}")
        return WarehouseError(f"{self.name} failed to run the query: {message}")

    def _pooled(self) -> Any | None:
        """An idle connection, if one is kept (it may have been closed by the server since)."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, conn: Any) -> bool:
        """Keep `conn` for a next query; False (the caller closes it) while stopping or when
        the pool is full."""
        with self._lock:
            if not self._stopping.is_set() and len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return True
        return False


def fingerprint(settings: Mapping[str, Any]) -> str:
    """Twelve hex digits naming connection settings, never from a password (data versions,
    which name them, reach cache keys)."""
    kept = sorted((str(k), str(v)) for k, v in settings.items() if "pass" not in str(k))
    return hashlib.sha256(repr(kept).encode()).hexdigest()[:12]


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def close_quietly(thing: Any) -> None:
    with contextlib.suppress(Exception):  # already closed, or its connection broke
        thing.close()
