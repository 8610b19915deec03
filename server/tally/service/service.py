"""The service every transport calls: query, compile, dimension values and the catalog. It knows
nothing about HTTP, GraphQL or the terminal; it takes a transport-neutral request and the
caller's context and returns frozen dataclasses.

A query: cache look-up (normalized request + manifest version + data version + the caller's
access context) -> on a miss, single flight (one warehouse execution for N identical concurrent
requests, with one more look-up inside it) -> compile (compiled-SQL cache in front of
MetricFlow) -> execute -> store -> the result shaped for this request (column order, row
order, its own SQL) -> one log line and the Prometheus counters, whatever the transport.

`query` is for threads (the CLI, Flight SQL, tests); `query_async` is for an event loop (REST,
GraphQL, MCP): it does only cheap work on the loop, runs the rest in the service's query pool
and dedupes identical misses without holding a thread per waiter.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from tally.cache.data_version import DataVersion
from tally.cache.keys import result_key
from tally.cache.redis_store import Unavailable
from tally.cache.result_cache import CacheEntry, Clock, ResultCache
from tally.cache.single_flight import AsyncSingleFlight, SingleFlight
from tally.cache.tiered import TieredCache, build_cache
from tally.cache.views import shape, variant
from tally.core import formats
from tally.core.caller import Caller
from tally.core.catalog import (
    DimensionInfo,
    EntityInfo,
    MeasureInfo,
    MetricInfo,
    SavedQueryInfo,
)
from tally.core.compiler import CompiledQuery, Compiler
from tally.core.engine import EngineSpec, Warehouse
from tally.core.request import QueryRequest
from tally.core.results import CacheStatus, QueryResult, Timing, normalize_types, values_only
from tally.core.semantic_manifest import load_manifest
from tally.errors import (
    CallerError,
    Forbidden,
    InvalidFilter,
    InvalidRequest,
    ManifestUnavailable,
    NotFound,
    QueryDataError,
    QueryTimeout,
    ResultTooLarge,
    TallyError,
    UnknownDimension,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.project import read_profile_target
from tally.rollups.router import Router
from tally.service.access import (
    authorize,
    check_dimensions,
    may_see,
    require,
    visible_dimensions,
    visible_entities,
    visible_errors,
    visible_metrics,
)
from tally.service.exports import Export
from tally.service.exports import batches as export_batches
from tally.service.jobs import Job, JobManager
from tally.service.limits import Limits, check_filter_size, filter_bytes
from tally.service.security.auth import Authenticator
from tally.service.security.config import load_security
from tally.service.telemetry import ServiceCounters, Telemetry
from tally.settings import Settings
from tally.warehouse import registry

log = logging.getLogger("tally")
T = TypeVar("T")
# Filters up to this size are checked on the event loop (microseconds); larger in the pool.
_LOOP_FILTER_BYTES = 2048
Versioned = tuple[Compiler, tuple[str, str]]


class TallyService:
    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse | None = None,
        *,
        clock: Clock = time.monotonic,
        compiler: Compiler | None = None,
    ) -> None:
        """`warehouse`: default, the profile target's, connected on first use. `clock`: what
        cache ages and TTLs are read from. `compiler`: one already built from the manifest at
        settings' manifest path, as the file is now, for this warehouse's engine, so that
        services of one process share one MetricFlow engine and compiled-SQL cache (the test
        suite builds hundreds of services over one manifest); a changed manifest file is
        still loaded into a new compiler of this service's own. Default: built on first use."""
        self.settings = settings
        self.clock = clock
        self._warehouse = warehouse
        self._engine: EngineSpec | None = registry.engine_of(warehouse) if warehouse else None
        self._manifest_path = settings.resolved_manifest_path()
        self._compiler: Compiler | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        if compiler is not None:
            engine = self._engine or compiler.engine
            if compiler.loaded.path != self._manifest_path or compiler.engine != engine:
                raise ValueError(
                    f"The compiler given was built from {compiler.loaded.path} for "
                    f"{compiler.engine.adapter_type} ({compiler.engine.execution_path}), not "
                    f"{self._manifest_path} for {engine.adapter_type} ({engine.execution_path})."
                )
            self._compiler, self._manifest_stamp = compiler, _stamp(self._manifest_path)
        self._reload_lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self.cache = build_cache(settings, clock)  # in-process, or tiered over Redis
        # The last answer to each question, kept longer, for when the warehouse is down
        # (stale-if-error); a quarter of the cache's bytes.
        self._stale = ResultCache(max(settings.cache_max_bytes // 4, 1), clock)
        self.counters = ServiceCounters()
        self.telemetry = Telemetry(self.cache, self.counters)
        if isinstance(self.cache, TieredCache):
            self.telemetry.registry.register(self.cache)
        self._flight: SingleFlight[tuple[CacheEntry, str]] = SingleFlight()
        self._async_flight: AsyncSingleFlight[tuple[CacheEntry, str]] = AsyncSingleFlight()
        self._async_reload: AsyncSingleFlight[Versioned | None] = AsyncSingleFlight()
        self._data_version: DataVersion | None = None
        self._last_versions: tuple[str, str] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._security: Authenticator | None = None
        self._router = Router(self._manifest_path.parent)
        self.limits = Limits(
            settings.rate_limit_per_minute,
            settings.max_concurrent_per_caller,
            clock,
            pool_size=settings.query_workers,
        )
        self.jobs = JobManager(
            max_running=settings.job_workers,
            retention_seconds=settings.job_retention_seconds,
            max_jobs=settings.job_max_held,
            clock=clock,
            max_per_caller=settings.job_max_per_caller,
            max_running_per_caller=settings.job_max_running_per_caller,
            max_bytes=settings.job_results_max_bytes,
            max_bytes_per_caller=settings.job_results_max_bytes_per_caller,
        )

    # Wiring ------------------------------------------------------------------------------

    def profile_output(self) -> dict[str, Any]:
        """The rendered dbt profile output tally serves (its target's connection settings)."""
        return read_profile_target(
            self.settings.resolved_project_dir(),
            self.settings.resolved_profiles_dir(),
            self.settings.target,
        )

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            with self._connect_lock:
                if self._warehouse is None:
                    project_dir = self.settings.resolved_project_dir()
                    output = self.profile_output()
                    self._engine, self._warehouse = registry.connect(
                        output, project_dir, self.settings.execution_path
                    )
        return self._warehouse

    @property
    def engine(self) -> EngineSpec:
        """The warehouse engine's spec (its dialect, MetricFlow renderer...)."""
        self.warehouse  # noqa: B018 - connects, which settles the engine
        assert self._engine is not None
        return self._engine

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The query pool: compiling, warehouse queries and encoding large results."""
        if self._executor is None:
            with self._connect_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.settings.query_workers, thread_name_prefix="tally-query"
                    )
        return self._executor

    @property
    def data_version(self) -> DataVersion:
        if self._data_version is None:
            run_results = self._manifest_path.parent / "run_results.json"
            shared = self.cache.store if isinstance(self.cache, TieredCache) else None
            self._data_version = DataVersion(self.warehouse.data_version, run_results, shared)
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
                compiler = Compiler(load_manifest(self._manifest_path), self.engine)
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

    def announce_new_data(self) -> bool:
        """After a rebuild (`tally build`): bump the shared data generation, so that no replica
        sharing this cache serves a result from before it. False without a shared cache or
        when Redis does not answer (logged)."""
        if not isinstance(self.cache, TieredCache):
            return False
        try:
            self.cache.store.bump()
        except Unavailable:
            log.warning("could not tell the other replicas about the rebuild: Redis unavailable")
            return False
        return True

    def cache_health(self) -> dict[str, Any]:
        """The cache backend and whether it answers (a shared cache may be down: uncached)."""
        return self.cache.health()

    def cache_stats(self) -> dict[str, Any]:
        s = self.cache.stats
        return {
            "backend": self.cache.health(),
            "entries": len(self.cache),
            "bytes": self.cache.current_bytes,
            "max_bytes": self.cache.max_bytes,
            "hits": s.hits,
            "misses": s.misses,
            "shared": s.shared,
            "evictions": s.evictions,
            "expirations": s.expirations,
            "compiled_sql_hits": self.compiler.sql_cache_hits,
            "warehouse_executions": self.counters.executions,
        }

    def shutdown(self) -> None:
        """Stop what still runs on the warehouse, drain the query pool, close the warehouse."""
        self.jobs.cancel_all()
        if self._warehouse is not None:
            self._warehouse.interrupt()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._warehouse is not None:
            self._warehouse.close()

    @property
    def security(self) -> Authenticator:
        """Keys, tokens and access policies (tally.yml beside dbt_project.yml)."""
        if self._security is None:
            with self._connect_lock:
                if self._security is None:
                    settings = self.settings
                    self._security = Authenticator(
                        load_security(settings.resolved_project_dir()),
                        _secret(settings.jwt_secret),
                        _secret(settings.embed_secret),
                        _secret(settings.admin_token),
                    )
        return self._security

    def authenticate(
        self, token: str | None, *, transport: str, request_id: str = "-"
    ) -> Caller:
        """The caller behind a bearer token (None: no token), for every transport: its
        subject, scopes and grant. Unauthorized (401) for a token that does not hold, or for
        no token once authentication is configured."""
        caller = self.security.authenticate(token, transport, request_id)
        self.limits.admit(caller)
        return caller

    def mint_embed_token(
        self,
        caller: Caller,
        claims: dict[str, Any],
        metrics: list[str] | None,
        ttl_seconds: float,
        scopes: list[str] | None = None,
        subject: str | None = None,
    ) -> tuple[str, Any]:
        """A short-lived signed token pinning `claims` (and, optionally, the only metrics it may
        query) for a browser. Admins mint any; a key with the `embed` scope only tokens with
        its own claims and metrics it may see itself, so nobody can widen their own access.
        `subject`: whom it is for in the minter's app; tokens of different subjects (by
        default, of different claims) have their own rate limits and jobs."""
        if not caller.has("admin"):
            require(caller, "embed")
            own = dict(caller.claims)
            widened = [k for k, v in claims.items() if own.get(k) != v]
            if widened:
                raise Forbidden(
                    f"Your key may mint embed tokens only with its own claims; "
                    f"{', '.join(sorted(widened))} differ.",
                )
            claims = {**own, **claims}
        names = None
        if metrics is not None:
            with visible_errors(caller, lambda: self.compiler):
                names = [self.compiler.metric(m).name for m in metrics]
            for name in names:
                if caller.grant is not None:
                    caller.grant.check_metric(name)
        wanted = scopes or ["meta", "query"]
        unknown = sorted(set(wanted) - {"meta", "query"})
        if unknown:
            raise InvalidRequest(
                f"Embed tokens carry only the meta and query scopes, not {unknown}."
            )
        return self.security.tokens.mint_embed(
            caller.subject or "anonymous", claims, names, ttl_seconds, wanted, subject
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking service call (the catalog, compile) from a coroutine: in the query pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    # Queries -----------------------------------------------------------------------------

    def compile(self, request: QueryRequest, caller: Caller) -> CompiledQuery:
        """The SQL of a request, as this caller would run it (its row filters included)."""
        require(caller, "sql")
        compiler = self.compiler
        with visible_errors(caller, lambda: compiler):
            return self._compile(compiler, self._authorize(compiler, request, caller), None)

    def _compile(
        self, compiler: Compiler, request: QueryRequest, limit: int | None
    ) -> CompiledQuery:
        """SQL over the smallest rollup that gives the same numbers, else over the source
        tables (rollup routing: tally.rollups), with which rollup it reads or why none."""
        if not self.settings.rollups_enabled:
            return compiler.compile(request, limit=limit)
        return self._router.compile(
            compiler, request, limit, self.warehouse, self.data_version.current()
        )

    def export(self, request: QueryRequest, caller: Caller) -> Export:
        """The whole result as a stream of record batches, any size (service/exports.py); it
        holds one of the caller's running-query slots until it ends or is closed."""
        compiler = self.compiler
        with visible_errors(caller, lambda: compiler):
            compiled = self._compile(compiler, self._authorize(compiler, request, caller), None)
        release = self.limits.acquire(caller)  # 429 now, before any byte is sent
        self.counters.executed()
        batches = _releasing(release, export_batches(self.warehouse, compiled))
        export = Export(compiled, batches, release)
        weakref.finalize(export, release)  # an export dropped unread (client gone) too
        return export

    def _authorize(
        self, compiler: Compiler, request: QueryRequest, caller: Caller
    ) -> QueryRequest:
        """The request as this caller may run it (access.authorize), its filters' size checked
        first, before anything parses them."""
        settings = self.settings
        check_filter_size(request, settings.max_filter_values, settings.max_filter_bytes)
        return authorize(compiler, request, caller)

    def check(self, request: QueryRequest, caller: Caller) -> None:
        """Raise the error this caller's request would meet (an unknown name, a metric it may not
        see), without running it and without the `sql` scope: a prepared statement's check."""
        compiler = self.compiler
        with visible_errors(caller, lambda: compiler):
            compiler.compile(self._authorize(compiler, request, caller))

    def query(
        self, request: QueryRequest, caller: Caller, *, use_cache: bool = True
    ) -> QueryResult:
        """The result, from the cache when possible (for threads). Identical concurrent misses
        run the warehouse once (thread-level single flight)."""
        started = time.perf_counter()
        try:
            with visible_errors(caller, lambda: self.compiler):
                result = self._query(request, caller, use_cache, started)
        except TallyError as e:
            self.telemetry.failed(request, caller, e)
            raise
        self.telemetry.answered(request, caller, result)
        return result

    def _query(
        self, request: QueryRequest, caller: Caller, use_cache: bool, started: float
    ) -> QueryResult:
        compiler, versions = self._versions()
        request = self._authorize(compiler, request, caller)
        key = result_key(request, *versions, caller.access)
        if use_cache and self.settings.cache_enabled:
            entry, outcome = self._lookup(key), "hit"
            if entry is None:
                # Only a miss needs the key of the last answer on any data (stale-if-error).
                stale_key = result_key(request, versions[0], "", caller.access)
                (entry, outcome), shared = self._flight.do(
                    key,
                    lambda: self._compute(compiler, request, key, stale_key, caller),
                    on_join=lambda: self.cache.stats.record("shared"),
                )
                outcome = "shared" if shared else outcome
        else:
            with self.limits.running(caller):
                entry, outcome = self._run(compiler, request, key, store=False), "miss"
        return self._result(compiler, entry, outcome, request, key, versions[0], started, caller)

    async def query_async(
        self,
        request: QueryRequest,
        caller: Caller,
        finish: Callable[[QueryResult], T] | None = None,
        *,
        read_cache: bool = True,
    ) -> tuple[QueryResult, T | None]:
        """query() for coroutines, returning (result, finish(result)) where `finish` is the
        transport's encoding. The event loop itself does only cheap work:
        * a hit that needs no re-sort and holds at most `loop_result_max_bytes` is shaped and
          finished on the loop;
        * building the engine or loading a new manifest, running a query, re-sorting a hit,
          and shaping and finishing a large result run in the query pool;
        * identical concurrent misses run once: the first caller's query takes one worker
          thread, the others await its result holding no thread (asyncio single flight).
        read_cache=False runs the query on the warehouse whatever the cache holds (the dbt
        Semantic Layer's readCache), and does not store its result."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done: Callable[[QueryResult], T | None] = finish or (lambda _r: None)
        try:
            with visible_errors(caller, lambda: self.compiler):
                if not self.settings.cache_enabled or not read_cache:
                    result, out = await loop.run_in_executor(
                        self.executor, self._uncached, request, caller, done, started
                    )
                else:
                    result, out = await self._query_cached(request, caller, done, started)
        except TallyError as e:
            self.telemetry.failed(request, caller, e)
            raise
        self.telemetry.answered(request, caller, result)
        return result, out

    def _uncached(
        self,
        request: QueryRequest,
        caller: Caller,
        done: Callable[[QueryResult], T | None],
        started: float,
    ) -> tuple[QueryResult, T | None]:
        compiler, versions = self._versions()
        allowed = self._authorize(compiler, request, caller)
        key = result_key(allowed, *versions, caller.access)
        with self.limits.running(caller):
            entry = self._run(compiler, allowed, key, store=False)
        result = self._result(compiler, entry, "miss", allowed, key, versions[0], started, caller)
        return result, done(result)

    async def _query_cached(
        self,
        request: QueryRequest,
        caller: Caller,
        done: Callable[[QueryResult], T | None],
        started: float,
    ) -> tuple[QueryResult, T | None]:
        loop = asyncio.get_running_loop()
        versioned = self._versions(reload=False)
        if versioned is None:  # one worker builds the engine or loads the manifest; all await it

            async def reload() -> Versioned | None:
                return await loop.run_in_executor(self.executor, self._versions)

            versioned, _ = await self._async_reload.do("versions", reload)
            assert versioned is not None
        compiler, versions = versioned

        def admit() -> tuple[QueryRequest, str]:
            allowed = self._authorize(compiler, request, caller)
            return allowed, result_key(allowed, *versions, caller.access)

        if filter_bytes(request) <= _LOOP_FILTER_BYTES:
            request, key = admit()
        else:  # parsing large filters would hold the event loop, and every caller behind it
            request, key = await loop.run_in_executor(self.executor, admit)
        entry, outcome = self._lookup(key), "hit"
        if entry is None:
            # The key of this shape's last answer under any data version (stale-if-error):
            # only a miss needs it.
            stale_key = result_key(request, versions[0], "", caller.access)

            async def lead() -> tuple[CacheEntry, str]:
                return await loop.run_in_executor(
                    self.executor, self._compute, compiler, request, key, stale_key, caller
                )

            (entry, outcome), shared = await self._async_flight.do(
                key, lead, on_join=lambda: self.cache.stats.record("shared")
            )
            outcome = "shared" if shared else outcome

        def deliver() -> tuple[QueryResult, T | None]:
            result = self._result(
                compiler, entry, outcome, request, key, versions[0], started, caller
            )
            return result, done(result)

        small = entry.nbytes <= self.settings.loop_result_max_bytes
        if small and request.row_order == entry.extra["order"]:
            return deliver()
        return await loop.run_in_executor(self.executor, deliver)

    def _lookup(self, key: str) -> CacheEntry | None:
        """The one look-up before single flight; a hit is counted here."""
        entry = self.cache.get(key)
        if entry is not None:
            self.cache.stats.record("hit")
        return entry

    def _compute(
        self,
        compiler: Compiler,
        request: QueryRequest,
        key: str,
        stale_key: str = "",
        caller: Caller | None = None,
    ) -> tuple[CacheEntry, str]:
        """Inside single flight: the entry stored by a flight that ended after our first look-up
        ("hit"), or the query run now ("miss"). When the warehouse is down or too slow, the
        last answer to the same question (on older data) if there is one ("stale")."""
        stored = self.cache.get(key)
        if stored is not None:
            self.cache.stats.record("hit")
            return stored, "hit"
        try:
            with self.limits.running(caller):
                # Another replica's result, or its query in flight, when the cache is shared.
                entry, outcome = self.cache.load_or_run(
                    key, lambda: self._run(compiler, request, key, store=True, stale_key=stale_key)
                )
        except (WarehouseUnavailable, QueryTimeout, WarehouseError) as e:
            self.cache.stats.record("miss")
            stale = self._stale.get(stale_key) if stale_key else None
            if stale is None or isinstance(e, QueryDataError):
                raise
            log.warning("warehouse failed (%s); serving a stale answer from %.0f s ago",
                        e.code, stale.age(self.clock()))  # fmt: skip
            self.counters.stale()
            return stale, "stale"
        except BaseException:
            self.cache.stats.record("miss")
            raise
        self.cache.stats.record(outcome)
        return entry, outcome

    def _versions(self, reload: bool = True) -> Versioned | None:
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

    def _result(
        self,
        compiler: Compiler,
        entry: CacheEntry,
        outcome: str,
        request: QueryRequest,
        key: str,
        manifest_version: str,
        started: float,
        caller: Caller,
    ) -> QueryResult:
        """This request's view of an entry: its column order, its row order (an entry is
        shared by requests that differ only in order, when they have no limit) and its SQL
        (empty for a caller without the `sql` scope)."""
        resort = request.row_order != entry.extra["order"]
        sql = entry.sql
        if resort:  # the entry's SQL orders rows another way: this request's own SQL
            sql = compiler.compile(request, limit=self._execution_limit(request)).sql
        table = shape(entry.table, request, resort=resort)
        hit = outcome in ("hit", "stale")
        now = self.clock()
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
            manifest_version=manifest_version,
            # Encoders memoise their output with the entry, for its own row order only.
            memo=None if resort else entry.extra,
            rollup=_rollup_seen_by(entry.extra.get("rollup"), caller),
        )

    def _execution_limit(self, request: QueryRequest) -> int:
        # One row more than allowed, to tell "exactly max_rows" from "too many".
        max_rows = self.settings.max_rows
        wanted = request.limit
        return wanted if wanted is not None and wanted <= max_rows else max_rows + 1

    def _run(
        self,
        compiler: Compiler,
        request: QueryRequest,
        key: str,
        store: bool,
        stale_key: str = "",
    ) -> CacheEntry:
        max_rows = self.settings.max_rows
        t0 = time.perf_counter()
        compiled = self._compile(compiler, request, self._execution_limit(request))
        t1 = time.perf_counter()
        self.telemetry.compile.observe(t1 - t0)
        try:
            self.counters.executed()
            raw = self.warehouse.execute(compiled.sql, self.settings.query_timeout_seconds)
        except QueryDataError as e:
            if not compiled.request.where:
                self.counters.failed()
                raise
            # The caller's values are the only part of the SQL the caller wrote.
            raise InvalidFilter(
                f"A filter does not fit the data: {e.message.split(': ', 1)[-1].rstrip('.')}. "
                "Compare each dimension with a value of its type (text in quotes, numbers "
                "without, dates as '2025-01-31').",
                filters=list(compiled.request.where),
            ) from None
        except TallyError:
            self.counters.failed()
            raise
        t2 = time.perf_counter()
        self.telemetry.execute.observe(t2 - t1)
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
            stored_at=self.clock(),
            ttl_seconds=self._ttl(compiler, request),
            compile_ms=round((t1 - t0) * 1000, 3),
            execute_ms=round((t2 - t1) * 1000, 3),
            nbytes=max(int(table.nbytes), 1),
            # The order its rows are in; encoders memoise their output here (per entry).
            extra={"order": request.row_order, "rollup": compiled.rollup},
        )
        if store:
            entry.extra["on_grow"] = functools.partial(self.cache.resize, key, entry)
            self.cache.put(key, entry)
            if stale_key and self.settings.stale_if_error_seconds > 0:
                self._stale.put(
                    stale_key, replace(entry, ttl_seconds=self.settings.stale_if_error_seconds)
                )
        return entry

    def _ttl(self, compiler: Compiler, request: QueryRequest) -> float:
        if request.saved_query:
            saved = compiler.saved_queries.get(request.saved_query)
            if saved is not None and saved.cache_ttl_seconds is not None:
                return saved.cache_ttl_seconds
        return self.settings.cache_ttl_seconds

    # Dimension values ---------------------------------------------------------------------

    async def dimension_values_async(
        self,
        dimension: str,
        metrics: tuple[str, ...] = (),
        *,
        limit: int | None = None,
        start: object = None,
        end: object = None,
        caller: Caller,
        finish: Callable[[QueryResult], T] | None = None,
    ) -> tuple[QueryResult, T | None]:
        """The distinct values of a dimension (a one-column result), cached like a query."""
        request = await self.run(
            self.dimension_values_request, dimension, metrics, limit, start, end, caller
        )
        done: Callable[[QueryResult], T | None] = finish or (lambda _r: None)
        result, out = await self.query_async(request, caller, lambda r: done(values_only(r)))
        return values_only(result), out

    def dimension_values_request(
        self,
        dimension: str,
        metrics: tuple[str, ...],
        limit: int | None,
        start: object,
        end: object,
        caller: Caller,
    ) -> QueryRequest:
        """The query whose only column is the distinct values of a dimension: with `metrics`,
        the values reachable through them (the dimension grouped by those metrics); without,
        every value in the dimension's own semantic model (a query without metrics)."""
        if not metrics:
            own = self.compiler.index(())
            if own.resolve(dimension) is None:
                # bike__station__city_name is station__city_name in its own model.
                parts = dimension.split("__")
                short = "__".join(parts[-2:]) if len(parts) > 2 else dimension
                if own.resolve(short) is not None:
                    dimension = short
        request = QueryRequest.create(
            metrics=metrics, group_by=[dimension], limit=limit, start=start, end=end
        )
        try:
            with visible_errors(caller, lambda: self.compiler):
                self.compiler.check(request)
        except UnknownDimension as e:  # a resource route: an unknown name is 404
            raise NotFound.of(e) from None
        return request

    # Asynchronous queries (call from the event loop) -------------------------------------

    def submit_query(
        self,
        request: QueryRequest,
        caller: Caller,
        *,
        read_cache: bool = True,
        rename: dict[str, str] | None = None,
    ) -> Job:
        """Run a query in the background, as `caller`; its job (and id) at once. `rename`:
        result columns to give another name (a client's aliases for metrics)."""
        require(caller, "query")  # before a job is held: a meta-only key holds none

        async def work(job: Job) -> QueryResult:
            job.compiled(await self.run(self._job_sql, request, caller))
            result, _ = await self.query_async(request, caller, read_cache=read_cache)
            if rename:
                names = [rename.get(n, n) for n in result.table.column_names]
                result = replace(result, table=result.table.rename_columns(names), memo=None)
            return result

        return self.jobs.submit(caller, "query", work)

    def submit_dimension_values(
        self,
        dimension: str,
        metrics: tuple[str, ...] = (),
        *,
        limit: int | None = None,
        caller: Caller,
    ) -> Job:
        """The distinct values of a dimension, in the background (see submit_query)."""
        require(caller, "query")

        async def work(job: Job) -> QueryResult:
            request = await self.run(
                self.dimension_values_request, dimension, metrics, limit, None, None, caller
            )
            job.compiled(await self.run(self._job_sql, request, caller))
            result, _ = await self.query_async(request, caller)
            return values_only(result)

        return self.jobs.submit(caller, "dimension_values", work)

    def _job_sql(self, request: QueryRequest, caller: Caller) -> str:
        """A job's SQL, as its caller will run it: shown only with the `sql` scope."""
        compiler = self.compiler
        with visible_errors(caller, lambda: compiler):
            sql = compiler.compile(self._authorize(compiler, request, caller)).sql
        return sql if caller.has("sql") else ""

    # Catalog -----------------------------------------------------------------------------

    def list_metrics(self, caller: Caller) -> tuple[MetricInfo, ...]:
        """The project's metrics this caller may see, without hidden ones (they can still be
        queried by name)."""
        require(caller, "meta")
        metrics = (m for m in self.compiler.metrics.values() if not m.hidden)
        return visible_metrics(tuple(sorted(metrics, key=lambda m: m.name)), caller)

    def get_metric(self, name: str, caller: Caller) -> MetricInfo:
        """One metric by name, spelt in any case; NotFound (404) when there is none, Forbidden
        (403) when the caller may not see it."""
        require(caller, "meta")
        try:
            with visible_errors(caller, lambda: self.compiler):
                metric = self.compiler.metric(name)
        except CallerError as e:
            raise NotFound.of(e) from None
        if caller.grant is not None:
            caller.grant.check_metric(metric.name)
        return metric

    def list_dimensions(
        self, metrics: tuple[str, ...], caller: Caller
    ) -> tuple[DimensionInfo, ...]:
        self._check_metrics(metrics, caller)
        return visible_dimensions(self.compiler.dimensions(metrics), caller)

    def list_entities(
        self, metrics: tuple[str, ...], caller: Caller
    ) -> tuple[EntityInfo, ...]:
        self._check_metrics(metrics, caller)
        return visible_entities(self.compiler.entities(metrics), caller)

    def list_measures(
        self, metrics: tuple[str, ...], caller: Caller
    ) -> tuple[MeasureInfo, ...]:
        """The measures the metrics aggregate; their SQL expression only with the `sql`
        scope (empty otherwise)."""
        self._check_metrics(metrics, caller)
        measures = self.compiler.measures(metrics)
        if caller.has("sql"):
            return measures
        return tuple(replace(m, expr="") for m in measures)

    def _check_metrics(self, metrics: tuple[str, ...], caller: Caller) -> None:
        """The `meta` scope, and each metric known and visible to the caller."""
        require(caller, "meta")
        if caller.grant is not None:
            with visible_errors(caller, lambda: self.compiler):
                for name in metrics:
                    caller.grant.check_metric(self.compiler.metric(name).name)

    def metrics_for(
        self, group_by: tuple[str, ...], caller: Caller
    ) -> tuple[MetricInfo, ...]:
        """The listed metrics (that this caller may see) that can be grouped by every one of
        `group_by`; Forbidden (403) for a group-by the caller may not see."""
        compiler = self.compiler
        check_dimensions(compiler, group_by, caller)
        return tuple(
            m
            for m in self.list_metrics(caller)
            if all(compiler.index((m.name,)).resolve(name) is not None for name in group_by)
        )

    def may_see(self, request: QueryRequest, caller: Caller) -> bool:
        """Whether the caller may see every metric and dimension the request names (a
        dashboard's tile); an unknown name counts as not visible."""
        compiler = self.compiler
        try:
            return may_see(compiler, request, caller)
        except CallerError:
            return False

    def list_saved_queries(self, caller: Caller) -> tuple[SavedQueryInfo, ...]:
        """The saved queries this caller may run (every metric and dimension allowed)."""
        require(caller, "meta")
        compiler = self.compiler
        queries = sorted(compiler.saved_queries.values(), key=lambda q: q.name)
        if caller.grant is None:
            return tuple(queries)
        return tuple(q for q in queries if _may_run(compiler, q.name, caller))

    def get_saved_query(self, name: str, caller: Caller) -> SavedQueryInfo:
        require(caller, "meta")
        try:
            with visible_errors(caller, lambda: self.compiler):
                saved = self.compiler.saved_query(name)
        except CallerError as e:
            raise NotFound.of(e) from None
        if caller.grant is not None:
            authorize(self.compiler, QueryRequest(saved_query=saved.name), caller)
        return saved


def _rollup_seen_by(status: Any, caller: Caller) -> Any:
    """Why each other rollup could not answer names rollups and their contents: like the SQL,
    only for a caller with the `sql` scope."""
    if status is None or caller.has("sql") or not status.misses:
        return status
    return replace(status, misses=())


def _releasing(release: Callable[[], None], batches: Iterator[T]) -> Iterator[T]:
    """The batches, calling `release` when they end or are closed once started (Export.close
    releases too, for an export closed before its first batch)."""
    try:
        yield from batches
    finally:
        release()


def _may_run(compiler: Compiler, saved_query: str, caller: Caller) -> bool:
    try:
        authorize(compiler, QueryRequest(saved_query=saved_query), caller)
    except Forbidden:
        return False
    return True


def _secret(value: Any) -> str | None:
    secret = value.get_secret_value() if value is not None else None
    return secret or None


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
