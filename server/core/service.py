"""The service every transport calls: query, compile and the catalog. It knows nothing about
HTTP, GraphQL or the terminal; it takes and returns frozen dataclasses.

A query: cache lookup (normalized request + manifest version + data version + access context)
-> on a miss, single flight (one warehouse execution for N identical concurrent requests) ->
compile (compiled-SQL cache in front of MetricFlow) -> execute -> store -> the result shaped
for this request (column order, row order, its own SQL). `query` is for threads (the CLI);
`query_async` is for the event loop (REST, GraphQL): it does only cheap work on the loop and
dedupes identical misses without holding a thread per waiter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from server.cache.data_version import DataVersion
from server.cache.keys import result_key
from server.cache.result_cache import CacheEntry, ResultCache
from server.cache.single_flight import AsyncSingleFlight, SingleFlight
from server.cache.views import row_order, shape, variant
from server.core.catalog import DimensionInfo, EntityInfo, MetricInfo, SavedQueryInfo
from server.core.compiler import CompiledQuery, Compiler
from server.core.errors import (
    InvalidFilter,
    ManifestUnavailable,
    NotFound,
    QueryDataError,
    TallyError,
    suggestion_suffix,
)
from server.core.request import QueryRequest, shorten
from server.core.results import (
    CacheStatus,
    QueryResult,
    ResultTooLarge,
    ServiceCounters,
    Timing,
    normalize_types,
    values_only,
)
from server.core.semantic_manifest import load_manifest
from server.settings import Settings
from server.warehouse.base import Warehouse
from server.warehouse.profile import connect

log = logging.getLogger("tally")
T = TypeVar("T")


class TallyService:
    def __init__(self, settings: Settings, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self._warehouse = warehouse
        self._manifest_path = settings.resolved_manifest_path()
        self._compiler: Compiler | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()
        self.cache = ResultCache(settings.cache_max_bytes, settings.cache_ttl_seconds)
        self.flight: SingleFlight[tuple[CacheEntry, str]] = SingleFlight()
        self.async_flight: AsyncSingleFlight[tuple[CacheEntry, str]] = AsyncSingleFlight()
        self._async_reload: AsyncSingleFlight[tuple[Compiler, tuple[str, str]] | None] = (
            AsyncSingleFlight()
        )
        self.counters = ServiceCounters()
        self._data_version: DataVersion | None = None
        self._last_versions: tuple[str, str] | None = None

    # Wiring ------------------------------------------------------------------------------

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = connect(
                self.settings.resolved_project_dir(),
                self.settings.resolved_profiles_dir(),
                self.settings.target,
            )
        return self._warehouse

    @property
    def data_version(self) -> DataVersion:
        if self._data_version is None:
            run_results = self._manifest_path.parent / "run_results.json"
            self._data_version = DataVersion(self.warehouse, run_results)
        return self._data_version

    @property
    def compiler(self) -> Compiler:
        """The compiler for the newest readable manifest. A changed manifest file is loaded and
        swapped in atomically; a broken one is logged and the previous compiler kept."""
        stamp = _stamp(self._manifest_path)
        if self._compiler is not None and stamp == self._manifest_stamp:
            return self._compiler
        with self._reload_lock:
            if self._compiler is not None and stamp == self._manifest_stamp:
                return self._compiler
            try:
                compiler = Compiler(load_manifest(self._manifest_path), self.warehouse.dialect)
            except ManifestUnavailable:
                if self._compiler is None:
                    raise
                log.warning(
                    "new semantic manifest at %s is unreadable; keeping version %s",
                    self._manifest_path,
                    self._compiler.loaded.version,
                )
                self._manifest_stamp = stamp  # do not retry until the file changes again
                return self._compiler
            if self._compiler is not None:
                log.info(
                    "semantic manifest changed: %s -> %s",
                    self._compiler.loaded.version,
                    compiler.loaded.version,
                )
            self._compiler, self._manifest_stamp = compiler, stamp
            return compiler

    @property
    def manifest_version(self) -> str:
        return self.compiler.loaded.version

    def invalidate_cache(self) -> str:
        """Forget every cached result: the next query of each shape runs on the warehouse."""
        self.data_version.bump()
        self.cache.clear()
        return self.data_version.current()

    def ready(self) -> None:
        """Raise unless the engine is built and the warehouse answers."""
        self.compiler  # noqa: B018 - builds the engine, or raises ManifestUnavailable
        self.warehouse.ping()

    # Queries -----------------------------------------------------------------------------

    def compile(self, request: QueryRequest) -> CompiledQuery:
        return self.compiler.compile(request)

    def _versions(self, reload: bool = True) -> tuple[Compiler, tuple[str, str]] | None:
        """The compiler and (manifest version, data version) that make up cache keys now.
        reload=False (on the event loop): never build the engine or load a changed manifest;
        None instead, and the caller goes to a worker thread to do it."""
        if reload:
            compiler = self.compiler
        else:
            compiler = self._compiler
            if (
                compiler is None
                or self._data_version is None
                or _stamp(self._manifest_path) != self._manifest_stamp
            ):
                return None
        versions = (compiler.loaded.version, self.data_version.current())
        if versions != self._last_versions:
            if self._last_versions is not None:
                # Old entries can never be hit again (their key has the old versions): free them.
                self.cache.clear()
            self._last_versions = versions
        return compiler, versions

    def query(self, request: QueryRequest, use_cache: bool = True) -> QueryResult:
        """The result, from the cache when possible (for threads: the CLI, tests, workers).
        Identical concurrent misses run the warehouse once (thread-level single flight)."""
        started = time.perf_counter()
        use_cache = use_cache and self.settings.cache_enabled
        versioned = self._versions()
        assert versioned is not None
        compiler, versions = versioned
        key = result_key(request, *versions)
        entry, outcome = self._fetch(compiler, request, key, use_cache)
        return self._result(compiler, entry, outcome, request, key, versions[0], started)

    async def query_async(
        self,
        request: QueryRequest,
        executor: Executor,
        finish: Callable[[QueryResult], T] | None = None,
    ) -> tuple[QueryResult, T | None]:
        """query() for coroutines (REST, GraphQL), returning (result, finish(result)) where
        `finish` is the transport's encoding. The event loop itself does only cheap work:
        * a hit that needs no re-sort and holds at most `loop_result_max_bytes` is shaped and
          finished on the loop;
        * building the engine or loading a new manifest, running a query, re-sorting a hit,
          and shaping and finishing a large result run in `executor`;
        * identical concurrent misses run once: the first caller's query takes one worker
          thread, the others await its result holding no thread (asyncio single flight)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done: Callable[[QueryResult], T | None] = finish or (lambda _r: None)
        if not self.settings.cache_enabled:

            def uncached() -> tuple[QueryResult, T | None]:
                result = self.query(request)
                return result, done(result)

            return await loop.run_in_executor(executor, uncached)
        versioned = self._versions(reload=False)
        if versioned is None:  # one worker builds the engine or loads the manifest; all await it

            async def reload() -> tuple[Compiler, tuple[str, str]] | None:
                return await loop.run_in_executor(executor, self._versions)

            versioned, _ = await self._async_reload.do("versions", reload)
            assert versioned is not None
        compiler, versions = versioned
        key = result_key(request, *versions)
        entry = self.cache.get(key)
        if entry is not None:
            self.cache.stats.record("hit")
            outcome = "hit"
        else:

            async def lead() -> tuple[CacheEntry, str]:
                return await loop.run_in_executor(
                    executor, self._fetch, compiler, request, key, True
                )

            (entry, outcome), shared = await self.async_flight.do(
                key, lead, on_join=lambda: self.cache.stats.record("shared")
            )
            if shared:
                outcome = "shared"

        def deliver() -> tuple[QueryResult, T | None]:
            result = self._result(compiler, entry, outcome, request, key, versions[0], started)
            return result, done(result)

        small = entry.nbytes <= self.settings.loop_result_max_bytes
        if small and row_order(request) == entry.extra["order"]:
            return deliver()
        return await loop.run_in_executor(executor, deliver)

    def _fetch(
        self, compiler: Compiler, request: QueryRequest, key: str, use_cache: bool
    ) -> tuple[CacheEntry, str]:
        """The entry for `key` and how it was had: "hit" (stored), "miss" (run here) or
        "shared" (run by an identical call in flight on another thread). Each call counts
        exactly one of them in the cache statistics."""
        record = self.cache.stats.record if use_cache else (lambda _outcome: None)
        if use_cache:
            stored = self.cache.get(key)
            if stored is not None:
                record("hit")
                return stored, "hit"

        def compute() -> tuple[CacheEntry, str]:
            stored = self.cache.get(key) if use_cache else None
            if stored is not None:  # stored by a flight that ended after our look-up
                record("hit")
                return stored, "hit"
            record("miss")
            return self._run(compiler, request, key), "miss"

        (entry, outcome), shared = self.flight.do(key, compute, on_join=lambda: record("shared"))
        return entry, ("shared" if shared else outcome)

    def _result(
        self,
        compiler: Compiler,
        entry: CacheEntry,
        outcome: str,
        request: QueryRequest,
        key: str,
        manifest_version: str,
        started: float,
    ) -> QueryResult:
        """This request's view of an entry: its column order, its row order (an entry is
        shared by requests that differ only in order, when they have no limit) and its SQL."""
        resort = row_order(request) != entry.extra["order"]
        sql = entry.sql
        if resort:  # the entry's SQL orders rows another way: this request's own SQL
            sql = compiler.compile(request, limit=self._execution_limit(request)).sql
        table = shape(entry.table, request, resort=resort)
        hit = outcome == "hit"
        now = time.monotonic()
        return QueryResult(
            table=table,
            sql=sql,
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
            ),
            manifest_version=manifest_version,
            memo=entry.extra,
        )

    def _execution_limit(self, request: QueryRequest) -> int:
        # One row more than allowed, to tell "exactly max_rows" from "too many".
        max_rows = self.settings.max_rows
        wanted = request.limit
        return wanted if wanted is not None and wanted <= max_rows else max_rows + 1

    def _run(self, compiler: Compiler, request: QueryRequest, key: str) -> CacheEntry:
        max_rows = self.settings.max_rows
        t0 = time.perf_counter()
        compiled = compiler.compile(request, limit=self._execution_limit(request))
        t1 = time.perf_counter()
        self.counters.observe("compile_seconds", t1 - t0)
        try:
            self.counters.executions += 1
            raw = self.warehouse.execute(compiled.sql, self.settings.query_timeout_seconds)
        except QueryDataError as e:
            if not compiled.request.where:
                self.counters.warehouse_errors += 1
                self.counters.observe("warehouse_error")
                raise
            # The caller's values are the only part of the SQL the caller wrote.
            raise InvalidFilter(
                f"A filter does not fit the data: {e.message.split(': ', 1)[-1].rstrip('.')}. "
                "Compare each dimension with a value of its type (text in quotes, numbers "
                "without, dates as '2025-01-31').",
                filters=list(request.where),
            ) from None
        except TallyError:
            self.counters.warehouse_errors += 1
            self.counters.observe("warehouse_error")
            raise
        t2 = time.perf_counter()
        self.counters.observe("execute_seconds", t2 - t1)
        if raw.num_rows > max_rows:
            raise ResultTooLarge(
                f"The result has more than {max_rows} rows (the server's maximum): add filters, "
                f"a coarser grain, or a limit of at most {max_rows}.",
                max_rows=max_rows,
            )
        table = shape(normalize_types(raw), request, resort=False)
        entry = CacheEntry(
            table=table,
            sql=compiled.sql,
            stored_at=time.monotonic(),
            ttl_seconds=self._ttl(compiler, request),
            compile_ms=round((t1 - t0) * 1000, 3),
            execute_ms=round((t2 - t1) * 1000, 3),
            nbytes=max(int(table.nbytes), 1),
            # The order its rows are in; encoders memoise their output here (per entry).
            extra={"order": row_order(request)},
        )
        if self.settings.cache_enabled:
            self.cache.put(key, entry)
        return entry

    def _ttl(self, compiler: Compiler, request: QueryRequest) -> float:
        if request.saved_query:
            saved = compiler.saved_queries.get(request.saved_query)
            if saved is not None and saved.cache_ttl_seconds is not None:
                return saved.cache_ttl_seconds
        return self.settings.cache_ttl_seconds

    # Catalog -----------------------------------------------------------------------------

    def list_metrics(self) -> tuple[MetricInfo, ...]:
        return tuple(sorted(self.compiler.metrics.values(), key=lambda m: m.name))

    def get_metric(self, name: str) -> MetricInfo:
        """One metric by name, spelt in any case (queries lower-case names too)."""
        metrics = self.compiler.metrics
        key = name.strip().lower()
        if key not in metrics:
            hint, best = suggestion_suffix(key, metrics)
            raise NotFound(
                f"Unknown metric {shorten(name)}.{hint}", code="unknown_metric", suggestion=best
            )
        return metrics[key]

    def list_dimensions(self, metrics: tuple[str, ...] = ()) -> tuple[DimensionInfo, ...]:
        return self.compiler.dimensions(metrics)

    def list_entities(self, metrics: tuple[str, ...] = ()) -> tuple[EntityInfo, ...]:
        return self.compiler.entities(metrics)

    def list_saved_queries(self) -> tuple[SavedQueryInfo, ...]:
        return tuple(sorted(self.compiler.saved_queries.values(), key=lambda q: q.name))

    def get_saved_query(self, name: str) -> SavedQueryInfo:
        queries = self.compiler.saved_queries
        key = name.strip().lower()
        if key not in queries:
            hint, best = suggestion_suffix(key, queries)
            raise NotFound(
                f"Unknown saved query {shorten(name)}.{hint}",
                code="unknown_saved_query",
                suggestion=best,
            )
        return queries[key]

    def dimension_values_request(
        self,
        dimension: str,
        metrics: tuple[str, ...] = (),
        limit: int | None = None,
        start: object = None,
        end: object = None,
        access_context: dict[str, str] | None = None,
    ) -> QueryRequest:
        """The query whose first column is the distinct values of a dimension: `metrics`
        (default: the first metric that reaches the dimension) grouped by the dimension. It
        runs like any other query, through the same cache (see values_only)."""
        if not metrics:
            reaching = [
                m.name
                for m in self.list_metrics()
                if dimension.split("__")[0] == "metric_time"
                or any(dimension in d.group_by_names() for d in self.list_dimensions((m.name,)))
            ]
            if not reaching:
                dims = {n for d in self.list_dimensions() for n in d.group_by_names()}
                hint, best = suggestion_suffix(dimension, dims)
                raise NotFound(
                    f"Unknown dimension {shorten(dimension)}.{hint}",
                    code="unknown_dimension",
                    suggestion=best,
                )
            metrics = (reaching[0],)
        return QueryRequest.create(
            metrics=metrics,
            group_by=[dimension],
            limit=limit,
            start=start,
            end=end,
            access_context=access_context,
        )

    def dimension_values(
        self,
        dimension: str,
        metrics: tuple[str, ...] = (),
        limit: int | None = None,
        start: object = None,
        end: object = None,
        access_context: dict[str, str] | None = None,
    ) -> QueryResult:
        """The distinct values of a dimension (a one-column result)."""
        request = self.dimension_values_request(
            dimension, metrics, limit, start, end, access_context
        )
        return values_only(self.query(request))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
