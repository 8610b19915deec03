"""The service's side of routing: read the registry once per data version, route each query
shape once per (data version, source), and fall back to MetricFlow's SQL over the source
tables when no rollup fits."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from cachetools import LRUCache

from tally.core.compiler import CompiledQuery, Compiler
from tally.core.engine import Warehouse
from tally.core.request import QueryRequest
from tally.rollups.definitions import rollups_of
from tally.rollups.routing import Route, route
from tally.rollups.store import BuiltRollups, source_version


class Router:
    def __init__(self, target_dir: Path) -> None:
        self._target_dir = target_dir
        self._built = BuiltRollups(target_dir)
        self._routes: LRUCache = LRUCache(maxsize=2048)
        self._lock = threading.Lock()

    def compile(
        self,
        compiler: Compiler,
        request: QueryRequest,
        limit: int | None,
        warehouse: Warehouse,
        data_version: str,
    ) -> CompiledQuery:
        """The request's SQL: over the smallest fitting rollup, else MetricFlow's over the
        source tables; either way with the rollup status (`compiled.rollup`)."""
        found = self.route(compiler, request, limit, warehouse, data_version)
        if found.compiled is not None:
            return replace(found.compiled, rollup=found.status)
        return replace(compiler.compile(request, limit=limit), rollup=found.status)

    def route(
        self,
        compiler: Compiler,
        request: QueryRequest,
        limit: int | None,
        warehouse: Warehouse,
        data_version: str,
    ) -> Route:
        if not rollups_of(compiler):
            return route(compiler, request, {}, "", limit)
        source = source_version(self._target_dir)
        key = (
            id(compiler), compiler.loaded.version, self._built.version(data_version), source,
            request.normalized(), request.row_order, limit,
        )
        with self._lock:
            found = self._routes.get(key)
        if found is None:
            built = self._built.read(warehouse, data_version)
            found = route(compiler, request, built, source, limit)
            with self._lock:
                self._routes[key] = found
        return found
