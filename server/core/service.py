"""The service every transport calls: query, compile and the catalog. It knows nothing about
HTTP, GraphQL or the terminal; it takes and returns frozen dataclasses."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from server.core.catalog import DimensionInfo, EntityInfo, MetricInfo, SavedQueryInfo
from server.core.compiler import CompiledQuery, Compiler
from server.core.errors import CallerError, ManifestUnavailable, NotFound, suggestion_suffix
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


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    sql: str
    request: QueryRequest
    timing: Timing
    cache: CacheStatus
    manifest_version: str


class TallyService:
    def __init__(self, settings: Settings, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self._warehouse = warehouse
        self._manifest_path = settings.resolved_manifest_path()
        self._compiler: Compiler | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()

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
                log.warning("new semantic manifest at %s is unreadable; keeping version %s",
                            self._manifest_path, self._compiler.loaded.version)
                self._manifest_stamp = stamp  # do not retry on every request
                return self._compiler
            if self._compiler is not None:
                log.info("semantic manifest changed: %s -> %s",
                         self._compiler.loaded.version, compiler.loaded.version)
            self._compiler, self._manifest_stamp = compiler, stamp
            return compiler

    @property
    def manifest_version(self) -> str:
        return self.compiler.loaded.version

    # Queries -----------------------------------------------------------------------------

    def compile(self, request: QueryRequest) -> CompiledQuery:
        return self.compiler.compile(request)

    def query(self, request: QueryRequest) -> QueryResult:
        started = time.perf_counter()
        compiler = self.compiler
        max_rows = self.settings.max_rows
        wanted = request.limit
        # Ask for one row more than allowed, to tell "exactly max_rows" from "too many".
        limit = wanted if wanted is not None and wanted <= max_rows else max_rows + 1
        compiled = compiler.compile(request, limit=limit)
        compiled_at = time.perf_counter()
        table = _dates_for_coarse_grains(
            self.warehouse.execute(compiled.sql, self.settings.query_timeout_seconds)
        )
        executed_at = time.perf_counter()
        if table.num_rows > max_rows:
            raise ResultTooLarge(
                f"The result has more than {max_rows} rows (the server's maximum): add filters, "
                f"a coarser grain, or a limit of at most {max_rows}.", max_rows=max_rows)
        return QueryResult(
            table=table,
            sql=compiled.sql,
            request=compiled.request,
            timing=Timing(
                compile_ms=round((compiled_at - started) * 1000, 3),
                execute_ms=round((executed_at - compiled_at) * 1000, 3),
                total_ms=round((executed_at - started) * 1000, 3),
            ),
            cache=CacheStatus(hit=False),
            manifest_version=compiler.loaded.version,
        )

    # Catalog -----------------------------------------------------------------------------

    def list_metrics(self) -> tuple[MetricInfo, ...]:
        return tuple(sorted(self.compiler.metrics.values(), key=lambda m: m.name))

    def get_metric(self, name: str) -> MetricInfo:
        metrics = self.compiler.metrics
        if name not in metrics:
            hint, best = suggestion_suffix(name, metrics)
            raise NotFound(f"Unknown metric '{name}'.{hint}", code="unknown_metric", suggestion=best)
        return metrics[name]

    def list_dimensions(self, metrics: tuple[str, ...] = ()) -> tuple[DimensionInfo, ...]:
        return self.compiler.dimensions(metrics)

    def list_entities(self, metrics: tuple[str, ...] = ()) -> tuple[EntityInfo, ...]:
        return self.compiler.entities(metrics)

    def list_saved_queries(self) -> tuple[SavedQueryInfo, ...]:
        return tuple(sorted(self.compiler.saved_queries.values(), key=lambda q: q.name))


_DATE_GRAINS = ("__day", "__week", "__month", "__quarter", "__year")


def _dates_for_coarse_grains(table: pa.Table) -> pa.Table:
    """Time columns at day grain or coarser come back from some engines as timestamps at
    midnight; they are dates, and JSON / CSV should say 2025-01-01, not 2025-01-01T00:00:00."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.name.endswith(_DATE_GRAINS):
            column = table.column(i)
            if field.type.tz is None:
                table = table.set_column(i, field.name, column.cast(pa.date32()))
    return table


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
