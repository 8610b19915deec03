"""The service every transport calls: query, compile and the catalog. It knows nothing about
HTTP, GraphQL or the terminal; it takes and returns frozen dataclasses.

A query: cache lookup (normalized request + manifest version + data version + access context)
-> on a miss, single flight (one warehouse execution for N identical concurrent requests) ->
compile (compiled-SQL cache in front of MetricFlow) -> execute -> store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from server.cache.data_version import DataVersion
from server.cache.keys import result_key
from server.cache.result_cache import CacheEntry, ResultCache
from server.cache.single_flight import SingleFlight
from server.core.catalog import DimensionInfo, EntityInfo, MetricInfo, SavedQueryInfo
from server.core.compiler import CompiledQuery, Compiler
from server.core.errors import (
    CallerError,
    InvalidFilter,
    ManifestUnavailable,
    NotFound,
    QueryDataError,
    TallyError,
    suggestion_suffix,
)
from server.core.request import QueryRequest
from server.core.semantic_manifest import load_manifest
from server.settings import Settings
from server.warehouse.base import Warehouse
from server.warehouse.profile import connect

log = logging.getLogger("tally")


class ResultTooLarge(CallerError):
    code = "result_too_large"


@dataclass(frozen=True)
class Timing:
    compile_ms: float
    execute_ms: float
    total_ms: float


@dataclass(frozen=True)
class CacheStatus:
    hit: bool
    age_seconds: float = 0.0
    ttl_seconds: float = 0.0
    key: str = ""
    shared: bool = False  # waited on an identical in-flight query instead of running it


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    sql: str
    request: QueryRequest
    timing: Timing
    cache: CacheStatus
    manifest_version: str
    # Per cache entry scratch space where encoders keep what they derived from `table`.
    memo: dict | None = field(default=None, compare=False, repr=False)


@dataclass
class ServiceCounters:
    """What observability reads: executions, compile/execute seconds, warehouse errors."""

    executions: int = 0
    warehouse_errors: int = 0
    listeners: list = field(default_factory=list)

    def observe(self, event: str, value: float = 1.0) -> None:
        for listener in self.listeners:
            listener(event, value)


class TallyService:
    def __init__(self, settings: Settings, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self._warehouse = warehouse
        self._manifest_path = settings.resolved_manifest_path()
        self._compiler: Compiler | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()
        self.cache = ResultCache(settings.cache_max_bytes, settings.cache_ttl_seconds)
        self.flight: SingleFlight[tuple[CacheEntry, bool]] = SingleFlight()
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

    def _versions(self) -> tuple[Compiler, tuple[str, str]]:
        compiler = self.compiler
        versions = (compiler.loaded.version, self.data_version.current())
        if versions != self._last_versions:
            if self._last_versions is not None:
                # Old entries can never be hit again (their key has the old versions): free them.
                self.cache.clear()
            self._last_versions = versions
        return compiler, versions

    def lookup(self, request: QueryRequest) -> QueryResult | None:
        """The cached result, or None. Cheap (two stat calls, a hash, a dict look-up), so the
        HTTP layer calls it on the event loop and only goes to the thread pool on a miss."""
        if not self.settings.cache_enabled:
            return None
        started = time.perf_counter()
        _, versions = self._versions()
        key = result_key(request, *versions)
        entry = self.cache.get(key)
        if entry is None:
            return None
        now = time.monotonic()
        return QueryResult(
            table=_shape(entry.table, request, resort=_order(request) != entry.extra["order"]),
            sql=entry.sql,
            request=request,
            timing=Timing(0.0, 0.0, _ms(started)),
            cache=CacheStatus(
                hit=True, age_seconds=entry.age(now), ttl_seconds=entry.remaining(now), key=key
            ),
            manifest_version=versions[0],
            memo=entry.extra,
        )

    def query(
        self, request: QueryRequest, use_cache: bool = True, looked_up: bool = False
    ) -> QueryResult:
        """The result, from the cache when possible. `looked_up`: the caller has just called
        lookup() and missed (the HTTP layer does, on the event loop), so it is not counted
        twice; a result stored in between is still found before the warehouse is asked."""
        use_cache = use_cache and self.settings.cache_enabled
        if use_cache and not looked_up:
            hit = self.lookup(request)
            if hit is not None:
                return hit
        started = time.perf_counter()
        compiler, versions = self._versions()
        key = result_key(request, *versions)

        def compute() -> tuple[CacheEntry, bool]:
            stored = self.cache.peek(key) if use_cache else None
            return (stored, True) if stored else (self._run(compiler, request, key), False)

        (entry, found), shared = self.flight.do(key, compute)
        if found:  # stored by a flight that ended between our look-up and this one
            self.cache.stats.hits += 1
        resort = _order(request) != entry.extra["order"]
        return QueryResult(
            table=_shape(entry.table, request, resort=resort),
            sql=entry.sql,
            request=request,
            timing=Timing(entry.compile_ms, entry.execute_ms, _ms(started)),
            cache=CacheStatus(
                hit=found,
                age_seconds=entry.age(),
                ttl_seconds=entry.remaining() if found else entry.ttl_seconds,
                key=key,
                shared=shared,
            ),
            manifest_version=versions[0],
            memo=entry.extra,
        )

    def _run(self, compiler: Compiler, request: QueryRequest, key: str) -> CacheEntry:
        max_rows = self.settings.max_rows
        wanted = request.limit
        # Ask for one row more than allowed, to tell "exactly max_rows" from "too many".
        limit = wanted if wanted is not None and wanted <= max_rows else max_rows + 1
        t0 = time.perf_counter()
        compiled = compiler.compile(request, limit=limit)
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
        table = _shape(_normalize_types(raw), request, resort=False)
        entry = CacheEntry(
            table=table,
            sql=compiled.sql,
            stored_at=time.monotonic(),
            ttl_seconds=self._ttl(compiler, request),
            compile_ms=round((t1 - t0) * 1000, 3),
            execute_ms=round((t2 - t1) * 1000, 3),
            nbytes=max(int(table.nbytes), 1),
            # The order its rows are in; encoders memoise their output here (per entry).
            extra={"order": _order(request)},
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
        metrics = self.compiler.metrics
        if name not in metrics:
            hint, best = suggestion_suffix(name, metrics)
            raise NotFound(
                f"Unknown metric '{name}'.{hint}", code="unknown_metric", suggestion=best
            )
        return metrics[name]

    def list_dimensions(self, metrics: tuple[str, ...] = ()) -> tuple[DimensionInfo, ...]:
        return self.compiler.dimensions(metrics)

    def list_entities(self, metrics: tuple[str, ...] = ()) -> tuple[EntityInfo, ...]:
        return self.compiler.entities(metrics)

    def list_saved_queries(self) -> tuple[SavedQueryInfo, ...]:
        return tuple(sorted(self.compiler.saved_queries.values(), key=lambda q: q.name))

    def get_saved_query(self, name: str) -> SavedQueryInfo:
        queries = self.compiler.saved_queries
        if name not in queries:
            hint, best = suggestion_suffix(name, queries)
            raise NotFound(
                f"Unknown saved query '{name}'.{hint}", code="unknown_saved_query", suggestion=best
            )
        return queries[name]

    def dimension_values(
        self,
        dimension: str,
        metrics: tuple[str, ...] = (),
        limit: int | None = None,
        start: object = None,
        end: object = None,
    ) -> QueryResult:
        """The distinct values of a dimension, through the same cache: the query of `metrics`
        (default: the first metric that reaches the dimension) grouped by the dimension."""
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
                    f"Unknown dimension '{dimension}'.{hint}",
                    code="unknown_dimension",
                    suggestion=best,
                )
            metrics = (reaching[0],)
        request = QueryRequest.create(
            metrics=metrics, group_by=[dimension], limit=limit, start=start, end=end
        )
        result = self.query(request)
        column = result.table.column_names[0]
        return QueryResult(
            table=result.table.select([column]),
            sql=result.sql,
            request=request,
            timing=result.timing,
            cache=result.cache,
            manifest_version=result.manifest_version,
        )


_DATE_GRAINS = ("__day", "__week", "__month", "__quarter", "__year")


def _normalize_types(table: pa.Table) -> pa.Table:
    """Types that say what the values are, whatever the engine:
    * time columns at day grain or coarser come back from some engines as timestamps at
      midnight; they are dates (JSON and CSV say 2025-01-01, not 2025-01-01T00:00:00);
    * counts come back from DuckDB as decimal(38, 0) (SUM over integers is a HUGEINT); they are
      integers. Kept as decimals if a value would not fit in 64 bits."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.name.endswith(_DATE_GRAINS) and f.type.tz is None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.date32()))
        elif pa.types.is_decimal(f.type) and f.type.scale == 0:
            with contextlib.suppress(pa.ArrowInvalid):
                table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table


def _shape(table: pa.Table, request: QueryRequest, resort: bool) -> pa.Table:
    """Columns in the order asked (group-bys, then metrics); on a hit from a differently spelt
    request (without a limit), rows sorted into this request's order: its order_by, else its
    group-bys. Nulls last, as the warehouse sorts them."""
    names = table.column_names

    def column(item: str, taken: list[str]) -> str | None:
        return next(
            (n for n in names if n not in taken and (n == item or n.startswith(item + "__"))), None
        )

    ordered: list[str] = []
    for item in (*request.group_by, *request.metrics):
        match = column(item, ordered)
        if match:
            ordered.append(match)
    ordered += [n for n in names if n not in ordered]
    if ordered != names:
        table = table.select(ordered)
    if resort and request.limit is None and table.num_rows > 1:
        keys: list[tuple[str, str]] = []
        for item in request.order_by or request.group_by:
            name = column(item.lstrip("-"), [k for k, _ in keys])
            if name:
                keys.append((name, "descending" if item.startswith("-") else "ascending"))
        if keys:
            table = table.sort_by(keys)  # arrow puts nulls at the end by default
    return table


def _order(request: QueryRequest) -> tuple[str, ...]:
    return request.order_by or request.group_by


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
