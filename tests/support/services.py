"""The service factory: a TallyService (or the FastAPI app around one) over a built warehouse,
with settings overrides, an optional warehouse object and an optional clock.

Building a service's compiler loads the semantic manifest and builds MetricFlow's engine
(~0.1-0.2 s), and every query shape is compiled again by a new compiler. Services of one
manifest therefore share one compiler per process (SharedEngines), handed to them through
TallyService's public `compiler` argument. A test gets a compiler of its own, built on first use
as in the server, when it reads another manifest (manifest_path=...) or asks for one
(shared_engine=False): tests of loading, reloading or of the compiler's own counters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tally.cache.result_cache import Clock
from tally.core.compiler import Compiler
from tally.core.engine import EngineSpec, Warehouse
from tally.core.semantic_manifest import load_manifest
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse import registry
from tests.support.paths import PROJECT_DIR


class SharedEngines:
    """One compiler (MetricFlow engine and compiled-SQL cache) per manifest file and engine
    spec: a service accepts only a compiler of its own spec, execution path included (the
    psycopg2 and ADBC engines of PostgreSQL are two)."""

    def __init__(self) -> None:
        self._compilers: dict[tuple[Path, EngineSpec], Compiler] = {}
        self._lock = threading.Lock()

    def compiler(self, manifest_path: Path, engine: EngineSpec) -> Compiler:
        key = (manifest_path, engine)
        with self._lock:
            if key not in self._compilers:
                self._compilers[key] = Compiler(load_manifest(manifest_path), engine)
            return self._compilers[key]


class ServiceFactory:
    """Services over one built warehouse: `warehouse()` makes its default warehouse object (a
    new one per service, as each server has its own connection), `base` are its settings."""

    def __init__(
        self,
        engines: SharedEngines,
        manifest_path: Path,
        warehouse: Callable[[], Warehouse],
        **base: Any,
    ) -> None:
        self.engines = engines
        self.manifest_path = manifest_path
        self._warehouse = warehouse
        self._base = {"project_dir": PROJECT_DIR, "manifest_path": manifest_path, **base}
        self._made: list[TallyService] = []

    def settings(self, **overrides: Any) -> Settings:
        return Settings(**{**self._base, **overrides})

    def service(
        self,
        warehouse: Warehouse | None = None,
        *,
        clock: Clock | None = None,
        shared_engine: bool = True,
        **overrides: Any,
    ) -> TallyService:
        """A new service (empty cache, zero counters). `warehouse`: default, a new one over
        the built warehouse. `clock`: default, time.monotonic. `overrides`: Settings fields."""
        settings = self.settings(**overrides)
        warehouse = warehouse if warehouse is not None else self._warehouse()
        compiler = None
        if shared_engine and "manifest_path" not in overrides:
            compiler = self.engines.compiler(
                settings.resolved_manifest_path(), registry.engine_of(warehouse)
            )
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        service = TallyService(settings, warehouse, compiler=compiler, **extra)
        self._made.append(service)
        return service

    def app(
        self,
        warehouse: Warehouse | None = None,
        *,
        clock: Clock | None = None,
        shared_engine: bool = True,
        **overrides: Any,
    ):
        """The real FastAPI app around a new service (as service() builds it)."""
        from tally.server import create_app

        service = self.service(warehouse, clock=clock, shared_engine=shared_engine, **overrides)
        return create_app(service.settings, service=service)

    def close(self) -> None:
        """Stop every service made here: their query pools and warehouse connections (in
        process, apps get no lifespan events, so nothing else stops them)."""
        while self._made:
            self._made.pop().shutdown()
