"""The service every transport calls: query, compile, export, dimension values, background jobs
and the catalog. It knows nothing about HTTP, GraphQL or the terminal; it takes a
transport-neutral request and the caller's context and returns frozen dataclasses.

TallyService is the one front door, and a thin one: each job has its own module, composed here.

* runtime.py: the warehouse and its engine, the query pool, the compiler (reloaded when the
  manifest changes), the data version, caches, limits, authentication, telemetry, shutdown;
* pipeline.py: a query's steps, written once, with a thread driver (`query`) and an asyncio
  driver (`query_async`), and exports and compile-only calls;
* dimension_values.py and background.py: distinct values, and queries run as jobs;
* catalog.py: the catalog as the caller may see it (transports read nothing else);
* security/: who the caller is (auth.py), what it may see (policies.py, access.py), and
  embed tokens (embed.py).

Every method that reaches the catalog or the warehouse takes the caller as a required argument:
a forgotten caller is a TypeError, never an answer with full access."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tally.cache.data_version import DataVersion
from tally.cache.result_cache import Clock
from tally.core.caller import Caller
from tally.core.catalog import (
    DimensionInfo,
    EntityInfo,
    MeasureInfo,
    MetricInfo,
    SavedQueryInfo,
)
from tally.core.compiler import CompiledQuery, Compiler
from tally.core.definitions import MetricDefinition
from tally.core.engine import EngineSpec, Warehouse
from tally.core.request import QueryRequest
from tally.core.results import QueryResult
from tally.rollups.build import BuildReport
from tally.service.background import Background
from tally.service.catalog import Catalog
from tally.service.dimension_values import DimensionValues
from tally.service.exports import Export
from tally.service.jobs import Job, JobManager
from tally.service.pipeline import QueryPipeline
from tally.service.runtime import Runtime
from tally.service.security.auth import Authenticator
from tally.service.security.embed import mint_embed_token
from tally.settings import Settings

T = TypeVar("T")


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
        self.runtime = rt = Runtime(settings, warehouse, clock=clock, compiler=compiler)
        self.settings, self.clock = settings, clock
        self.cache, self.counters, self.telemetry, self.limits = (
            rt.cache, rt.counters, rt.telemetry, rt.limits
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
            fanout=settings.embed_fanout,
        )
        self._pipeline = QueryPipeline(rt)
        self._values = DimensionValues(self._pipeline)
        self._background = Background(self._pipeline, self._values, self.jobs)
        self._catalog = Catalog(rt)

    # Wiring (runtime.py) -----------------------------------------------------------------

    @property
    def warehouse(self) -> Warehouse:
        return self.runtime.warehouse

    @property
    def engine(self) -> EngineSpec:
        """The warehouse engine's spec (its dialect, MetricFlow renderer...)."""
        return self.runtime.engine

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The query pool: compiling, warehouse queries and encoding large results."""
        return self.runtime.executor

    @property
    def data_version(self) -> DataVersion:
        return self.runtime.data_version

    @property
    def compiler(self) -> Compiler:
        """The compiler for the newest readable manifest (for tools beside the project:
        validate, rollup builds; transports read the catalog methods instead)."""
        return self.runtime.compiler

    @property
    def manifest_version(self) -> str:
        return self.runtime.compiler.loaded.version

    @property
    def security(self) -> Authenticator:
        """Keys, tokens and access policies (tally.yml beside dbt_project.yml)."""
        return self.runtime.security

    def profile_output(self) -> dict[str, Any]:
        """The rendered dbt profile output tally serves (its target's connection settings)."""
        return self.runtime.profile_output()

    def invalidate_cache(self) -> str:
        """Forget every cached result: the next query of each shape runs on the warehouse."""
        return self.runtime.invalidate_cache()

    def ready(self) -> None:
        """Raise unless the engine is built and the warehouse answers."""
        self.runtime.ready()

    def announce_new_data(self) -> bool:
        """After a rebuild: tell the replicas sharing this cache (see Runtime)."""
        return self.runtime.announce_new_data()

    def cache_health(self) -> dict[str, Any]:
        """The cache backend and whether it answers (a shared cache may be down: uncached)."""
        return self.cache.health()

    def cache_stats(self) -> dict[str, Any]:
        return self.runtime.cache_stats()

    def build_rollups(
        self, only: tuple[str, ...] = (), full: bool = False,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> list[BuildReport]:  # fmt: skip
        """Build (or refresh) the rollups in the served warehouse (`tally rollups build`)."""
        return self.runtime.build_rollups(only, full, progress)

    def shutdown(self) -> None:
        """Cancel the jobs, stop what still runs on the warehouse, drain the pool, close."""
        self.jobs.cancel_all()
        self.runtime.shutdown()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking service call (the catalog, compile) from a coroutine: in the query pool."""
        return await self.runtime.run(fn, *args)

    # Callers (security/) -----------------------------------------------------------------

    def authenticate(
        self, token: str | None, *, transport: str, request_id: str = "-"
    ) -> Caller:
        """The caller behind a bearer token (None: no token), for every transport: its
        subject, scopes and grant. Unauthorized (401) for a token that does not hold, or for
        no token once authentication is configured."""
        caller = self.security.authenticate(token, transport, request_id)
        self.limits.admit(caller)
        return caller

    def admit(self, caller: Caller) -> None:
        """One more request of an authenticated caller against its rate limit
        (TooManyRequests): for a transport whose one connection carries many requests (the
        PostgreSQL endpoint's statements), as authenticate() is for one request each."""
        self.limits.admit(caller)

    def mint_embed_token(
        self,
        caller: Caller,
        claims: dict[str, Any],
        metrics: list[str] | None,
        ttl_seconds: float,
        scopes: list[str] | None = None,
        subject: str | None = None,
    ) -> tuple[str, Any]:
        """A short-lived signed token for a browser (security/embed.py)."""
        return mint_embed_token(self.security, self.compiler, caller, claims, metrics,
                                ttl_seconds, scopes, subject)  # fmt: skip

    # Queries (pipeline.py) ---------------------------------------------------------------

    def query(
        self, request: QueryRequest, caller: Caller, *, use_cache: bool = True
    ) -> QueryResult:
        """The result, from the cache when possible (for threads). Identical concurrent misses
        run the warehouse once (thread-level single flight)."""
        return self._pipeline.query(request, caller, use_cache=use_cache)

    async def query_async(
        self,
        request: QueryRequest,
        caller: Caller,
        finish: Callable[[QueryResult], T] | None = None,
        *,
        read_cache: bool = True,
    ) -> tuple[QueryResult, T | None]:
        """query() for coroutines, returning (result, finish(result)) where `finish` is the
        transport's encoding; read_cache=False runs the query whatever the cache holds (the
        dbt Semantic Layer's readCache) and does not store its result."""
        return await self._pipeline.query_async(request, caller, finish, read_cache=read_cache)

    def compile(self, request: QueryRequest, caller: Caller) -> CompiledQuery:
        """The SQL of a request, as this caller would run it (its row filters included)."""
        return self._pipeline.compile(request, caller)

    def check(self, request: QueryRequest, caller: Caller) -> None:
        """Raise the error this caller's request would meet, without running it."""
        self._pipeline.check(request, caller)

    def export(self, request: QueryRequest, caller: Caller) -> Export:
        """The whole result as a stream of record batches, any size (service/exports.py)."""
        return self._pipeline.export(request, caller)

    # Dimension values and jobs -----------------------------------------------------------

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
        return await self._values.values_async(dimension, metrics, limit=limit, start=start,
                                               end=end, caller=caller, finish=finish)  # fmt: skip

    def dimension_values_request(
        self, dimension: str, metrics: tuple[str, ...], limit: int | None, start: object,
        end: object, caller: Caller,
    ) -> QueryRequest:  # fmt: skip
        """The one-column query of a dimension's distinct values (dimension_values.py)."""
        return self._values.request(dimension, metrics, limit, start, end, caller)

    def submit_query(
        self,
        request: QueryRequest,
        caller: Caller,
        *,
        read_cache: bool = True,
        rename: dict[str, str] | None = None,
    ) -> Job:
        """Run a query in the background, as `caller`; its job (and id) at once."""
        return self._background.submit_query(request, caller, read_cache=read_cache,
                                             rename=rename)  # fmt: skip

    def submit_dimension_values(
        self, dimension: str, metrics: tuple[str, ...] = (), *, limit: int | None = None,
        caller: Caller,
    ) -> Job:  # fmt: skip
        """The distinct values of a dimension, in the background (see submit_query)."""
        return self._background.submit_dimension_values(dimension, metrics, limit=limit,
                                                        caller=caller)  # fmt: skip

    # Catalog (catalog.py) ----------------------------------------------------------------

    def list_metrics(self, caller: Caller) -> tuple[MetricInfo, ...]:
        """The metrics this caller may see, without hidden ones (queryable by name)."""
        return self._catalog.list_metrics(caller)

    def get_metric(self, name: str, caller: Caller) -> MetricInfo:
        """One metric by name, any case; 404 when there is none, 403 when not visible."""
        return self._catalog.get_metric(name, caller)

    def list_dimensions(
        self, metrics: tuple[str, ...], caller: Caller
    ) -> tuple[DimensionInfo, ...]:
        return self._catalog.list_dimensions(metrics, caller)

    def list_entities(self, metrics: tuple[str, ...], caller: Caller) -> tuple[EntityInfo, ...]:
        return self._catalog.list_entities(metrics, caller)

    def list_measures(self, metrics: tuple[str, ...], caller: Caller) -> tuple[MeasureInfo, ...]:
        """The measures the metrics aggregate (their SQL only with the `sql` scope)."""
        return self._catalog.list_measures(metrics, caller)

    def metrics_for(self, group_by: tuple[str, ...], caller: Caller) -> tuple[MetricInfo, ...]:
        """The visible metrics that can be grouped by every one of `group_by`."""
        return self._catalog.metrics_for(group_by, caller)

    def metric_time(self, metric: str, caller: Caller) -> DimensionInfo | None:
        """A metric's metric_time and its grains (None: it has none)."""
        return self._catalog.metric_time(metric, caller)

    def metrics_among(self, names: list[str], caller: Caller) -> dict[str, MetricInfo]:
        """Which of a result's columns are metrics the caller may query."""
        return self._catalog.metrics_among(names, caller)

    def metric_definition(self, name: str, caller: Caller) -> MetricDefinition:
        """A metric's expression, window and dbt models (for explaining it)."""
        return self._catalog.metric_definition(name, caller)

    def custom_grains(self, caller: Caller) -> tuple[str, ...]:
        return self._catalog.custom_grains(caller)

    def list_saved_queries(self, caller: Caller) -> tuple[SavedQueryInfo, ...]:
        """The saved queries this caller may run (every metric and dimension allowed)."""
        return self._catalog.list_saved_queries(caller)

    def get_saved_query(self, name: str, caller: Caller) -> SavedQueryInfo:
        return self._catalog.get_saved_query(name, caller)

    def saved_query_group_bys(self, name: str, caller: Caller) -> tuple[str, ...]:
        """The group-bys of a saved query the caller would run."""
        return self._catalog.saved_query_group_bys(name, caller)

    def may_see(self, request: QueryRequest, caller: Caller) -> bool:
        """Whether the caller may see every metric and dimension the request names."""
        return self._catalog.may_see(request, caller)
