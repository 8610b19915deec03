"""What a running service is made of, wired once: the warehouse (connected on first use) and its
engine, the query pool, the compiler for the newest readable manifest (reloaded atomically when
the file changes), the data version, the caches, limits, authentication, telemetry, readiness
and shutdown. The query pipeline, the catalog and the jobs work over one Runtime."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tally.cache.data_version import DataVersion
from tally.cache.redis_store import Unavailable
from tally.cache.result_cache import Clock, ResultCache
from tally.cache.tiered import TieredCache, build_cache
from tally.core.compiler import CompiledQuery, Compiler
from tally.core.engine import EngineSpec, Warehouse
from tally.core.request import QueryRequest
from tally.core.semantic_manifest import load_manifest
from tally.errors import ManifestUnavailable
from tally.project import read_profile_target
from tally.rollups.build import BuildReport, build_rollups, open_writer
from tally.rollups.router import Router
from tally.service.limits import Limits
from tally.service.security.auth import Authenticator
from tally.service.security.config import load_security
from tally.service.telemetry import ServiceCounters, Telemetry
from tally.settings import Settings
from tally.warehouse import registry

log = logging.getLogger("tally")
T = TypeVar("T")
Versioned = tuple[Compiler, tuple[str, str]]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse | None = None,
        *,
        clock: Clock = time.monotonic,
        compiler: Compiler | None = None,
    ) -> None:
        """See TallyService.__init__ for the arguments."""
        self.settings = settings
        self.clock = clock
        self._warehouse = warehouse
        self._engine: EngineSpec | None = registry.engine_of(warehouse) if warehouse else None
        self.manifest_path = settings.resolved_manifest_path()
        self._compiler: Compiler | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        if compiler is not None:
            engine = self._engine or compiler.engine
            if compiler.loaded.path != self.manifest_path or compiler.engine != engine:
                raise ValueError(
                    f"The compiler given was built from {compiler.loaded.path} for "
                    f"{compiler.engine.adapter_type} ({compiler.engine.execution_path}), not "
                    f"{self.manifest_path} for {engine.adapter_type} ({engine.execution_path})."
                )
            self._compiler, self._manifest_stamp = compiler, _stamp(self.manifest_path)
        self._reload_lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self.cache = build_cache(settings, clock)  # in-process, or tiered over Redis
        # The last answer to each question, kept longer, for when the warehouse is down
        # (stale-if-error); a quarter of the cache's bytes.
        self.stale = ResultCache(max(settings.cache_max_bytes // 4, 1), clock)
        self.counters = ServiceCounters()
        self.telemetry = Telemetry(self.cache, self.counters)
        if isinstance(self.cache, TieredCache):
            self.telemetry.registry.register(self.cache)
        self._data_version: DataVersion | None = None
        self._last_versions: tuple[str, str] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._security: Authenticator | None = None
        self.router = Router(self.manifest_path.parent)
        self.limits = Limits(
            settings.rate_limit_per_minute,
            settings.max_concurrent_per_caller,
            clock,
            pool_size=settings.query_workers,
            fanout=settings.embed_fanout,
        )

    # Connections and pools ---------------------------------------------------------------

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

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking call (the catalog, compile) from a coroutine: in the query pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

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

    # Definitions and data ----------------------------------------------------------------

    @property
    def compiler(self) -> Compiler:
        """The compiler for the newest readable manifest. A changed manifest file is loaded and
        swapped in atomically; a broken one is logged and the previous compiler kept."""
        stamp = _stamp(self.manifest_path)
        if self._compiler is not None and stamp == self._manifest_stamp:
            return self._compiler
        with self._reload_lock:
            if self._compiler is not None and stamp == self._manifest_stamp:
                return self._compiler
            try:
                compiler = Compiler(load_manifest(self.manifest_path), self.engine)
            except ManifestUnavailable:
                if self._compiler is None:
                    raise
                log.warning(
                    "new semantic manifest at %s is unreadable; keeping version %s",
                    self.manifest_path,
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
    def data_version(self) -> DataVersion:
        if self._data_version is None:
            run_results = self.manifest_path.parent / "run_results.json"
            shared = self.cache.store if isinstance(self.cache, TieredCache) else None
            self._data_version = DataVersion(self.warehouse.data_version, run_results, shared)
        return self._data_version

    def versions(self, reload: bool = True) -> Versioned | None:
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
                or _stamp(self.manifest_path) != self._manifest_stamp
            ):
                return None
        versions = (compiler.loaded.version, self.data_version.current())
        if versions != self._last_versions:
            if self._last_versions is not None:
                # Old entries can never be hit again (their key has the old versions): free them.
                self.cache.clear()
            self._last_versions = versions
        return compiler, versions

    def compile(
        self, compiler: Compiler, request: QueryRequest, limit: int | None
    ) -> CompiledQuery:
        """SQL over the smallest rollup that gives the same numbers, else over the source
        tables (rollup routing: tally.rollups), with which rollup it reads or why none."""
        if not self.settings.rollups_enabled:
            return compiler.compile(request, limit=limit)
        return self.router.compile(
            compiler, request, limit, self.warehouse, self.data_version.current()
        )

    # Operations --------------------------------------------------------------------------

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

    def build_rollups(
        self, only: tuple[str, ...] = (), full: bool = False,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> list[BuildReport]:  # fmt: skip
        """Build (or refresh) the project's rollups in the served warehouse (`tally rollups
        build`; tally.rollups.build says how, per engine)."""
        writer = open_writer(self.engine, self.profile_output(),
                             self.settings.resolved_project_dir())  # fmt: skip
        try:
            return build_rollups(self.compiler, writer, self.manifest_path.parent, only=only,
                                 full=full, progress=progress)  # fmt: skip
        finally:
            writer.close()

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
        if self._warehouse is not None:
            self._warehouse.interrupt()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._warehouse is not None:
            self._warehouse.close()


def _secret(value: Any) -> str | None:
    secret = value.get_secret_value() if value is not None else None
    return secret or None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
