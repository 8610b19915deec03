"""The query pipeline, its steps written once:

    admit (authorize, key) -> look up -> single flight -> compute (look again, run or serve
    stale) -> run (compile, execute, shape, store) -> this request's result

and two drivers over the same steps: `query` for threads (the CLI, Flight SQL, tests) and
`query_async` for an event loop (REST, GraphQL, MCP), which does only cheap work on the loop,
runs the rest in the query pool and dedupes identical misses without holding a thread per
waiter. Skipping the cache (`use_cache=False`, the dbt Semantic Layer's readCache) is an option
of either driver, not a third copy. Exports and compile-only calls are admitted the same way."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tally.cache.keys import result_key
from tally.cache.result_cache import CacheEntry
from tally.cache.single_flight import AsyncSingleFlight, SingleFlight
from tally.cache.views import shape, variant
from tally.core import formats
from tally.core.caller import Caller
from tally.core.compiler import CompiledQuery, Compiler
from tally.core.request import QueryRequest
from tally.core.results import CacheStatus, QueryResult, Timing, normalize_types
from tally.errors import (
    InvalidFilter,
    QueryDataError,
    QueryTimeout,
    ResultTooLarge,
    TallyError,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.service.access import authorize, may_run_saved, require, visible_errors
from tally.service.exports import Export
from tally.service.exports import batches as export_batches
from tally.service.limits import check_filter_size, filter_bytes
from tally.service.runtime import Runtime, Versioned

log = logging.getLogger("tally")
T = TypeVar("T")
# Filters up to this size are checked on the event loop (microseconds); larger in the pool.
_LOOP_FILTER_BYTES = 2048
# What a caller without the `sql` scope reads for a rollup whose saved query it may not run.
ROLLUP = "rollup"


@dataclass(frozen=True)
class Admitted:
    """A request admitted for a caller: as the caller may run it, under the versions of now,
    with its cache key."""

    compiler: Compiler
    versions: tuple[str, str]  # (manifest, data)
    request: QueryRequest
    key: str
    caller: Caller

    @property
    def stale_key(self) -> str:
        """The key of this shape's last answer under any data version (stale-if-error)."""
        return result_key(self.request, self.versions[0], "", self.caller.access,
                          self.compiler.dialect)


class QueryPipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._flight: SingleFlight[tuple[CacheEntry, str]] = SingleFlight()
        self._async_flight: AsyncSingleFlight[tuple[CacheEntry, str]] = AsyncSingleFlight()
        self._async_reload: AsyncSingleFlight[Versioned | None] = AsyncSingleFlight()

    # Drivers -----------------------------------------------------------------------------

    def query(self, request: QueryRequest, caller: Caller, *, use_cache: bool = True
              ) -> QueryResult:  # fmt: skip
        """The result, from the cache when possible (for threads)."""
        started = time.perf_counter()
        try:
            with visible_errors(caller, lambda: self.rt.compiler):
                versioned = self.rt.versions()
                assert versioned is not None  # reload=True: always the versions of now
                admitted = self.admit(*versioned, request, caller)
                if use_cache and self.rt.settings.cache_enabled:
                    entry, outcome = self.lookup(admitted.key), "hit"
                    if entry is None:
                        (entry, outcome), shared = self._flight.do(
                            admitted.key, lambda: self.compute(admitted),
                            on_join=lambda: self.rt.cache.stats.record("shared"),
                        )  # fmt: skip
                        outcome = "shared" if shared else outcome
                else:
                    entry, outcome = self.uncached(admitted), "miss"
                result = self.result(admitted, entry, outcome, started)
        except TallyError as e:
            self.rt.telemetry.failed(request, caller, e)
            raise
        self.rt.telemetry.answered(request, caller, result)
        return result

    async def query_async(
        self,
        request: QueryRequest,
        caller: Caller,
        finish: Callable[[QueryResult], T] | None = None,
        *,
        read_cache: bool = True,
    ) -> tuple[QueryResult, T | None]:
        """query() for coroutines, returning (result, finish(result)), `finish` being the
        transport's encoding. On the loop: a cache look-up, admitting a request with small
        filters, and shaping and finishing a small hit in its stored order. In the query pool:
        building the engine or loading a new manifest, parsing large filters, running a query,
        re-sorting a hit, shaping and finishing a large result. Identical concurrent misses run
        once, the others await it holding no thread."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done: Callable[[QueryResult], T | None] = finish or (lambda _r: None)
        try:
            with visible_errors(caller, lambda: self.rt.compiler):
                versioned = self.rt.versions(reload=False)
                if versioned is None:  # one worker builds the engine or loads the manifest

                    async def reload() -> Versioned | None:
                        return await loop.run_in_executor(self.rt.executor, self.rt.versions)

                    versioned, _ = await self._async_reload.do("versions", reload)
                    assert versioned is not None
                if filter_bytes(request) <= _LOOP_FILTER_BYTES:
                    admitted = self.admit(*versioned, request, caller)
                else:  # large filters would hold the event loop, and every caller behind it
                    admitted = await loop.run_in_executor(
                        self.rt.executor, self.admit, *versioned, request, caller
                    )
                if not (self.rt.settings.cache_enabled and read_cache):
                    entry, outcome = await loop.run_in_executor(
                        self.rt.executor, self.uncached, admitted
                    ), "miss"  # fmt: skip
                else:
                    entry, outcome = self.lookup(admitted.key), "hit"
                    if entry is None:

                        async def lead() -> tuple[CacheEntry, str]:
                            return await loop.run_in_executor(
                                self.rt.executor, self.compute, admitted
                            )

                        (entry, outcome), shared = await self._async_flight.do(
                            admitted.key, lead,
                            on_join=lambda: self.rt.cache.stats.record("shared"),
                        )  # fmt: skip
                        outcome = "shared" if shared else outcome

                def deliver() -> tuple[QueryResult, T | None]:
                    result = self.result(admitted, entry, outcome, started)
                    return result, done(result)

                small = entry.nbytes <= self.rt.settings.loop_result_max_bytes
                if small and admitted.request.row_order == entry.extra["order"]:
                    result, out = deliver()
                else:
                    result, out = await loop.run_in_executor(self.rt.executor, deliver)
        except TallyError as e:
            self.rt.telemetry.failed(request, caller, e)
            raise
        self.rt.telemetry.answered(request, caller, result)
        return result, out

    def compile(self, request: QueryRequest, caller: Caller) -> CompiledQuery:
        """The SQL of a request, as this caller would run it (its row filters included)."""
        require(caller, "sql")
        compiler = self.rt.compiler
        with visible_errors(caller, lambda: compiler):
            return self.rt.compile(compiler, self.authorize(compiler, request, caller), None)

    def check(self, request: QueryRequest, caller: Caller) -> None:
        """Raise the error this caller's request would meet (an unknown name, a metric it may not
        see), without running it and without the `sql` scope: a prepared statement's check."""
        compiler = self.rt.compiler
        with visible_errors(caller, lambda: compiler):
            compiler.compile(self.authorize(compiler, request, caller))

    def export(self, request: QueryRequest, caller: Caller) -> Export:
        """The whole result as a stream of record batches, any size (service/exports.py); it
        holds one of the caller's running-query slots until it ends or is closed."""
        compiler = self.rt.compiler
        with visible_errors(caller, lambda: compiler):
            compiled = self.rt.compile(compiler, self.authorize(compiler, request, caller), None)
        compiled = replace(compiled, rollup=_rollup_seen_by(compiled.rollup, caller, compiler))
        release = self.rt.limits.acquire(caller)  # 429 now, before any byte is sent
        self.rt.counters.executed()
        batches = _releasing(release, export_batches(self.rt.warehouse, compiled))
        export = Export(compiled, batches, release)
        weakref.finalize(export, release)  # an export dropped unread (client gone) too
        return export

    # Steps -------------------------------------------------------------------------------

    def authorize(self, compiler: Compiler, request: QueryRequest, caller: Caller
                  ) -> QueryRequest:  # fmt: skip
        """The request as this caller may run it (access.authorize), its filters' size checked
        first, before anything parses them."""
        settings = self.rt.settings
        check_filter_size(request, settings.max_filter_values, settings.max_filter_bytes)
        return authorize(compiler, request, caller)

    def admit(self, compiler: Compiler, versions: tuple[str, str], request: QueryRequest,
              caller: Caller) -> Admitted:  # fmt: skip
        allowed = self.authorize(compiler, request, caller)
        key = result_key(allowed, *versions, caller.access, compiler.dialect)
        return Admitted(compiler, versions, allowed, key, caller)

    def lookup(self, key: str) -> CacheEntry | None:
        """The one look-up before single flight; a hit is counted here."""
        entry = self.rt.cache.get(key)
        if entry is not None:
            self.rt.cache.stats.record("hit")
        return entry

    def compute(self, admitted: Admitted) -> tuple[CacheEntry, str]:
        """Inside single flight: the entry stored by a flight that ended after our first look-up
        ("hit"), or the query run now ("miss"). When the warehouse is down or too slow, the
        last answer to the same question (on older data) if there is one ("stale")."""
        cache = self.rt.cache
        stored = cache.get(admitted.key)
        if stored is not None:
            cache.stats.record("hit")
            return stored, "hit"
        try:
            with self.rt.limits.running(admitted.caller):
                # Another replica's result, or its query in flight, when the cache is shared.
                entry, outcome = cache.load_or_run(
                    admitted.key, lambda: self.run(admitted, store=True)
                )
        except (WarehouseUnavailable, QueryTimeout, WarehouseError) as e:
            cache.stats.record("miss")
            stale = self.rt.stale.get(admitted.stale_key)
            if stale is None or isinstance(e, QueryDataError):
                raise
            log.warning("warehouse failed (%s); serving a stale answer from %.0f s ago",
                        e.code, stale.age(self.rt.clock()))  # fmt: skip
            self.rt.counters.stale()
            return stale, "stale"
        except BaseException:
            cache.stats.record("miss")
            raise
        cache.stats.record(outcome)
        return entry, outcome

    def uncached(self, admitted: Admitted) -> CacheEntry:
        """The query run now, whatever the cache holds, and not stored."""
        with self.rt.limits.running(admitted.caller):
            return self.run(admitted, store=False)

    def run(self, admitted: Admitted, *, store: bool) -> CacheEntry:
        """Compile, execute, shape; stored (with a stale-if-error copy) when `store`."""
        rt, request = self.rt, admitted.request
        max_rows = rt.settings.max_rows
        t0 = time.perf_counter()
        compiled = rt.compile(admitted.compiler, request, self._execution_limit(request))
        t1 = time.perf_counter()
        rt.telemetry.compile.observe(t1 - t0)
        try:
            rt.counters.executed()
            raw = rt.warehouse.execute(compiled.sql, rt.settings.query_timeout_seconds)
        except QueryDataError as e:
            if not compiled.request.where:
                rt.counters.failed()
                raise
            # The caller's values are the only part of the SQL the caller wrote.
            raise InvalidFilter(
                f"A filter does not fit the data: {e.message.split(': ', 1)[-1].rstrip('.')}. "
                "Compare each dimension with a value of its type (text in quotes, numbers "
                "without, dates as '2025-01-31').",
                filters=list(compiled.request.where),
            ) from None
        except TallyError:
            rt.counters.failed()
            raise
        t2 = time.perf_counter()
        rt.telemetry.execute.observe(t2 - t1)
        if raw.num_rows > max_rows:
            raise ResultTooLarge(
                f"The result has more than {max_rows} rows (the server's maximum): add filters, "
                f"a coarser grain, or a limit of at most {max_rows}; or export it whole with "
                f"POST /api/v1/exports ({formats.listed(formats.names(formats.exports()))}; "
                "`tally query --output FILE`).",
                max_rows=max_rows,
            )
        if compiled.renames:
            names = dict(compiled.renames)
            raw = raw.rename_columns([names.get(n, n) for n in raw.column_names])
        table = shape(normalize_types(raw), request, resort=False)
        entry = CacheEntry(
            table=table,
            sql=compiled.sql,
            stored_at=rt.clock(),
            ttl_seconds=self._ttl(admitted.compiler, request),
            compile_ms=round((t1 - t0) * 1000, 3),
            execute_ms=round((t2 - t1) * 1000, 3),
            nbytes=max(int(table.nbytes), 1),
            # The order its rows are in; encoders memoise their output here (per entry).
            extra={"order": request.row_order, "rollup": compiled.rollup},
        )
        if store:
            entry.extra["on_grow"] = functools.partial(rt.cache.resize, admitted.key, entry)
            rt.cache.put(admitted.key, entry)
            if rt.settings.stale_if_error_seconds > 0:
                rt.stale.put(admitted.stale_key,
                             replace(entry, ttl_seconds=rt.settings.stale_if_error_seconds))
        return entry

    def result(self, admitted: Admitted, entry: CacheEntry, outcome: str, started: float
               ) -> QueryResult:  # fmt: skip
        """This request's view of an entry: its column order, its row order (an entry is
        shared by requests that differ only in order, when they have no limit) and its SQL
        (empty for a caller without the `sql` scope)."""
        request, caller, key = admitted.request, admitted.caller, admitted.key
        resort = request.row_order != entry.extra["order"]
        sql = entry.sql
        if resort:  # the entry's SQL orders rows another way: this request's own SQL
            sql = admitted.compiler.compile(request, limit=self._execution_limit(request)).sql
        table = shape(entry.table, request, resort=resort)
        hit = outcome in ("hit", "stale")
        now = self.rt.clock()
        return QueryResult(
            table=table,
            sql=sql if caller.has("sql") else "",
            request=request,
            timing=Timing(
                0.0 if hit else entry.compile_ms, 0.0 if hit else entry.execute_ms, _ms(started)
            ),
            cache=CacheStatus(
                hit=hit,
                # A miss is fresh from the warehouse, whenever its entry was stored.
                age_seconds=0.0 if outcome == "miss" else entry.age(now),
                ttl_seconds=entry.ttl_seconds if outcome == "miss" else entry.remaining(now),
                key=key,
                shared=outcome == "shared",
                variant=variant(key, request),
                stale=outcome == "stale",
            ),
            manifest_version=admitted.versions[0],
            # Encoders memoise their output with the entry, for its own row order only.
            memo=None if resort else entry.extra,
            rollup=_rollup_seen_by(entry.extra.get("rollup"), caller, admitted.compiler),
        )

    def _execution_limit(self, request: QueryRequest) -> int:
        # One row more than allowed, to tell "exactly max_rows" from "too many".
        max_rows = self.rt.settings.max_rows
        wanted = request.limit
        return wanted if wanted is not None and wanted <= max_rows else max_rows + 1

    def _ttl(self, compiler: Compiler, request: QueryRequest) -> float:
        if request.saved_query:
            saved = compiler.saved_queries.get(request.saved_query)
            if saved is not None and saved.cache_ttl_seconds is not None:
                return saved.cache_ttl_seconds
        return self.rt.settings.cache_ttl_seconds


def _rollup_seen_by(status: Any, caller: Caller, compiler: Compiler) -> Any:
    """Why each other rollup could not answer names rollups and their contents: like the SQL,
    only for a caller with the `sql` scope. Without it, the rollup that answered is named
    only when the caller may run its saved query (else it reads `rollup`)."""
    if status is None or caller.has("sql"):
        return status
    used = status.used
    if used and caller.grant is not None and not may_run_saved(compiler, used, caller):
        used = ROLLUP
    return replace(status, used=used, misses=())


def _releasing(release: Callable[[], None], batches: Iterator[T]) -> Iterator[T]:
    """The batches, calling `release` when they end or are closed once started (Export.close
    releases too, for an export closed before its first batch)."""
    try:
        yield from batches
    finally:
        release()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
