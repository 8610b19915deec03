"""MetricFlow, wrapped: catalog look-ups and request -> SQL for one warehouse dialect.

The engine is built once per manifest over a compile-only SQL client (MetricFlow needs only
the engine type and the plan renderer to write SQL; execution goes through tally's own
warehouse layer). MetricFlow keeps global state (its id generator), so compiling happens under
a lock; executing the SQL does not need it.
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass, replace
from typing import Any

from cachetools import LRUCache
from metricflow.engine.metricflow_engine import (
    MetricFlowEngine,
    MetricFlowQueryRequest,
    OutputColumnOrderMode,
)
from metricflow.protocols.sql_client import SqlEngine
from metricflow_semantics.errors.error_classes import InformativeUserError

from tally.core.catalog import (
    DimensionInfo,
    EntityInfo,
    MetricInfo,
    SavedQueryInfo,
    metric_info,
    saved_query_info,
    title,
)
from tally.core.engine import EngineSpec
from tally.core.filters import check_where
from tally.core.grains import GRAINS, grains_from
from tally.core.request import QueryRequest
from tally.core.reserved import quote_reserved, reserved_names
from tally.core.semantic_manifest import LoadedManifest
from tally.errors import (
    CompileFault,
    InvalidGrain,
    InvalidOrderBy,
    InvalidQuery,
    InvalidRequest,
    ManifestMismatch,
    UnknownDimension,
    UnknownMetric,
    UnknownSavedQuery,
    shorten,
    suggestion_suffix,
)


class _CompileOnlyClient:
    """The part of MetricFlow's SqlClient protocol that compiling uses: the engine type and the
    plan renderer, named by the warehouse engine's spec."""

    def __init__(self, engine: EngineSpec) -> None:
        try:
            self.sql_engine_type = SqlEngine[engine.metricflow_engine]
            module, _, cls = engine.metricflow_renderer.partition(":")
            self.sql_plan_renderer = getattr(importlib.import_module(module), cls)()
        except (KeyError, ImportError, AttributeError) as e:
            raise CompileFault(
                f"Engine {engine.adapter_type!r} names a MetricFlow engine or renderer that "
                f"this MetricFlow does not have ({engine.metricflow_engine}, "
                f"{engine.metricflow_renderer}): {e}"
            ) from e

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise CompileFault("tally executes SQL through its warehouse layer, not MetricFlow's.")

    execute = dry_run = query

    def close(self) -> None:
        pass

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        return f"${bind_parameter_key}"


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    request: QueryRequest  # the request as compiled (saved query expanded)


class Compiler:
    def __init__(self, loaded: LoadedManifest, engine: EngineSpec) -> None:
        served = {engine.adapter_type, *engine.compatible_adapters}
        if loaded.adapter_type and loaded.adapter_type not in served:
            raise ManifestMismatch(
                f"The semantic manifest at {loaded.path} was parsed by dbt for a "
                f"{loaded.adapter_type} target, but tally's warehouse is "
                f"{engine.adapter_type}: parse the project for the target tally serves (`dbt "
                "parse --target <target>`, with TALLY_TARGET=<target> for tally), or point "
                "TALLY_MANIFEST_PATH at that target's manifest."
            )
        self.loaded = loaded
        self.engine = engine
        self.dialect = engine.dialect
        self._lock = threading.Lock()
        self._sql_cache: LRUCache = LRUCache(maxsize=2048)
        self._sql_cache_lock = threading.Lock()
        # Catalog look-ups per metric set, owned by this compiler (a new manifest gets a new
        # compiler, and the old one's caches go with it).
        self._dimensions_cache: dict[tuple[str, ...], tuple[DimensionInfo, ...]] = {}
        self._entities_cache: dict[tuple[str, ...], tuple[EntityInfo, ...]] = {}
        self.sql_cache_hits = 0
        self._engine = MetricFlowEngine(loaded.lookup, _CompileOnlyClient(engine))
        manifest = loaded.manifest
        # Semantic names MetricFlow may write as bare identifiers: entities, dimensions.
        self._reserved = reserved_names(
            (
                element.name
                for model in manifest.semantic_models
                for element in (*model.entities, *model.dimensions)
            ),
            engine.reserved_words,
        )
        self.metrics: dict[str, MetricInfo] = {
            m.name: metric_info(m, loaded.metric_meta.get(m.name, {})) for m in manifest.metrics
        }
        self.saved_queries: dict[str, SavedQueryInfo] = {
            q.name: saved_query_info(q, loaded.saved_query_meta.get(q.name, {}))
            for q in manifest.saved_queries
        }

    # Catalog ---------------------------------------------------------------------------

    def metric(self, name: str) -> MetricInfo:
        """One metric by name, spelt in any case."""
        key = name.strip().lower()
        if key not in self.metrics:
            hint, best = suggestion_suffix(key, self.metrics)
            raise UnknownMetric(f"Unknown metric {shorten(name)}.{hint}", suggestion=best)
        return self.metrics[key]

    def saved_query(self, name: str) -> SavedQueryInfo:
        key = name.strip().lower()
        if key not in self.saved_queries:
            hint, best = suggestion_suffix(key, self.saved_queries)
            raise UnknownSavedQuery(
                f"Unknown saved query {shorten(name)}.{hint}", suggestion=best
            )
        return self.saved_queries[key]

    def dimensions(self, metrics: tuple[str, ...] = ()) -> tuple[DimensionInfo, ...]:
        key = tuple(sorted({self.metric(name).name for name in metrics}))
        found = self._dimensions_cache.get(key)
        if found is None:
            found = self._dimensions_cache[key] = self._dimensions(key)
        return found

    def _dimensions(self, metrics: tuple[str, ...]) -> tuple[DimensionInfo, ...]:
        with self._lock:
            found = self._engine.list_dimensions(list(metrics) or None)
        out: dict[str, DimensionInfo] = {}
        for d in found:
            is_time = d.type.value == "time"
            name = d.granularity_free_dunder_name if is_time else d.dunder_name
            grain = d.type_params.time_granularity.value if is_time and d.type_params else None
            out.setdefault(
                name,
                DimensionInfo(
                    name=name,
                    label=d.label or title(name),
                    description=d.description or "",
                    type="time" if is_time else "categorical",
                    grains=grains_from(grain) if is_time else (),
                    semantic_model=d.semantic_model_reference.semantic_model_name
                    if d.semantic_model_reference
                    else None,
                ),
            )
        if not metrics:
            # Without metrics, MetricFlow lists model dimensions only; metric_time is common to
            # every metric, at the grains of the finest one.
            out.setdefault("metric_time", DimensionInfo("metric_time", "", "", "time", GRAINS))
        if "metric_time" in out:
            mt = out["metric_time"]
            out["metric_time"] = DimensionInfo(
                name="metric_time",
                label="Metric time",
                description="The time of each metric's events (order date for order metrics), "
                "at the grain asked for.",
                type="time",
                grains=mt.grains,
            )
        return tuple(sorted(out.values(), key=lambda d: (d.name != "metric_time", d.name)))

    def entities(self, metrics: tuple[str, ...] = ()) -> tuple[EntityInfo, ...]:
        key = tuple(sorted({self.metric(name).name for name in metrics}))
        found = self._entities_cache.get(key)
        if found is None:
            found = self._entities_cache[key] = self._entities(key)
        return found

    def _entities(self, metrics: tuple[str, ...]) -> tuple[EntityInfo, ...]:
        if metrics:
            with self._lock:
                names = {e.name for e in self._engine.entities_for_metrics(list(metrics))}
        else:
            names = None
        out: dict[str, EntityInfo] = {}
        for model in self.loaded.manifest.semantic_models:
            for e in model.entities:
                if names is not None and e.name not in names:
                    continue
                current = out.get(e.name)
                if current is None or (current.type != "primary" and e.type.value == "primary"):
                    out[e.name] = EntityInfo(
                        name=e.name,
                        label=e.label or title(e.name),
                        description=e.description or "",
                        type=e.type.value,
                    )
        return tuple(sorted(out.values(), key=lambda e: e.name))

    # Compile ---------------------------------------------------------------------------

    def expand(self, request: QueryRequest) -> QueryRequest:
        """A saved query becomes an ordinary request (its filters AND the caller's)."""
        if not request.saved_query:
            return request
        saved = self.saved_query(request.saved_query)
        return replace(
            request,
            metrics=saved.metrics,
            group_by=saved.group_by,
            where=(*saved.where, *request.where),
            saved_query=None,
        )

    def check(self, request: QueryRequest) -> QueryRequest:
        """Validate names against the catalog (typed errors with suggestions) and return the
        request with its filters in canonical, checked spelling."""
        request = self.expand(request)
        if not request.metrics:
            raise InvalidRequest("Ask for at least one metric.")
        for name in request.metrics:
            self.metric(name)
        dims = self.dimensions(request.metrics)
        entities = {e.name for e in self.entities(request.metrics)}
        for name in request.group_by:
            self._check_group_by(name, dims, entities, request.metrics)
        wheres = []
        for clause in request.where:
            text = clause if isinstance(clause, str) else clause.to_where(self.dialect)
            checked = check_where(text, self.dialect)
            for ref in checked.references:
                if ref.kind == "Metric":
                    self.metric(ref.name)
                    continue
                name = f"{ref.name}__{ref.grain}" if ref.grain else ref.name
                self._check_group_by(name, dims, entities, request.metrics, in_filter=True)
            wheres.append(checked.sql)
        has_time = any(
            g == "metric_time" or g.startswith("metric_time__") for g in request.group_by
        )
        for name in request.metrics:
            if self.metrics[name].requires_metric_time and not has_time:
                raise InvalidQuery(
                    f"'{name}' compares a period with an earlier one: group by metric_time "
                    "(e.g. metric_time__month)."
                )
        self._check_grouped_cumulative(request.metrics, request.group_by)
        selectable = set(request.metrics) | set(request.group_by)
        for item in request.order_by:
            name = item.lstrip("-")
            if name not in selectable:
                hint, best = suggestion_suffix(name, selectable)
                raise InvalidOrderBy(
                    f"Cannot order by '{name}': order by one of the requested metrics or "
                    f"group-bys ({', '.join(sorted(selectable))}).{hint}",
                    suggestion=best,
                )
        return replace(request, where=tuple(wheres))

    def _check_grouped_cumulative(
        self, metrics: tuple[str, ...], group_by: tuple[str, ...]
    ) -> None:
        """MetricFlow fills the time spine per day, not per (day, group), and reports a period by
        the value on its last day that has a row. Grouped by a dimension, a group whose window
        is empty on the period's last day would carry an earlier day's value. That cannot
        happen at the grains in `grouped_grains` (the window on the last day covers every day
        of the period), so only the other grains are refused: better no answer than a wrong
        one, and a filter per group is exact at every grain."""
        others = [g for g in group_by if g.split("__")[0] != "metric_time"]
        if not others:
            return
        grains = [
            g.partition("__")[2] or "day" for g in group_by if g.split("__")[0] == "metric_time"
        ]
        for name in self._cumulative_inputs(metrics):
            exact = self.metrics[name].grouped_grains
            wrong = [g for g in grains if exact is not None and g not in exact]
            if wrong:
                raise InvalidQuery(
                    f"Cumulative metric '{name}' grouped by {', '.join(others)} is exact only at "
                    f"metric_time grain {' or '.join(exact)}, not '{wrong[0]}': a group without "
                    f"orders at the end of a {wrong[0]} would show an earlier day's value. Ask "
                    f"metric_time__{exact[-1]}, or filter instead of grouping, e.g. where "
                    f"{{{{ Dimension('{others[0]}') }}}} = '...'.",
                    metric=name,
                    grains=list(exact),
                )

    def _cumulative_inputs(self, metrics: tuple[str, ...]) -> list[str]:
        """The cumulative metrics among `metrics` and the metrics they are derived from."""
        found: list[str] = []
        todo = list(metrics)
        while todo:
            name = todo.pop()
            info = self.metrics.get(name)
            if info is None or name in found:
                continue
            if info.type == "cumulative":
                found.append(name)
            todo += [i for i in info.inputs if i in self.metrics and i != name]
        return found

    def _check_group_by(
        self,
        name: str,
        dims: tuple[DimensionInfo, ...],
        entities: set[str],
        metrics: tuple[str, ...],
        in_filter: bool = False,
    ) -> None:
        by_name = {d.name: d for d in dims}
        if name in by_name or name in entities:
            return
        base, _, grain = name.rpartition("__")
        if base in by_name and by_name[base].type == "time":
            dim = by_name[base]
            if grain in dim.grains:
                return
            raise InvalidGrain(
                f"'{base}' cannot be asked at grain '{grain}': use one of "
                f"{', '.join(dim.grains)} (e.g. '{base}__{dim.grains[0]}').",
                dimension=base,
                grains=list(dim.grains),
            )
        if base in by_name and grain in GRAINS:
            raise InvalidGrain(f"'{base}' is not a time dimension; it has no grain '{grain}'.")
        candidates = [n for d in dims for n in d.group_by_names()] + sorted(entities)
        hint, best = suggestion_suffix(name, candidates)
        where = " in a filter" if in_filter else ""
        raise UnknownDimension(
            f"Unknown dimension '{name}'{where} for {', '.join(metrics)}.{hint}",
            suggestion=best,
        )

    def compile(self, request: QueryRequest, limit: int | None = None) -> CompiledQuery:
        """SQL for a request. Repeated query shapes are served from the compiled-SQL cache
        (per manifest: a new manifest gets a new Compiler and so an empty cache)."""
        key = (request.normalized(), request.row_order, limit)
        with self._sql_cache_lock:
            cached = self._sql_cache.get(key)
        if cached is not None:
            self.sql_cache_hits += 1
            return cached
        compiled = self._compile(request, limit)
        with self._sql_cache_lock:
            self._sql_cache[key] = compiled
        return compiled

    def _compile(self, request: QueryRequest, limit: int | None) -> CompiledQuery:
        checked = self.check(request)
        mf_request = MetricFlowQueryRequest.create(
            metric_names=list(checked.metrics),
            group_by_names=list(checked.group_by) or None,
            where_constraints=list(checked.where) or None,
            # Without an order, rows come in group-by order (time ascending), so the same
            # question always prints the same way and a limit keeps the earliest rows.
            order_by_names=list(checked.row_order) or None,
            limit=limit if limit is not None else checked.limit,
            time_constraint_start=checked.start,
            time_constraint_end=checked.end,
            output_column_order_mode=OutputColumnOrderMode.TYPE_GROUPED,
        )
        with self._lock:
            try:
                sql = self._engine.explain(mf_request).sql_statement.sql
            except InformativeUserError as e:
                raise InvalidQuery(_mf_message(e)) from None
            except Exception as e:
                raise CompileFault(f"MetricFlow could not compile this query: {e}") from e
        return CompiledQuery(sql=quote_reserved(sql, self._reserved, self.dialect), request=checked)


def _mf_message(e: Exception) -> str:
    """MetricFlow's long multi-section message, shortened to its message and suggestions."""
    text = str(e)
    parts = re.split(r"\n\s*(?:Query Input|Issue Location|Object Builder Input):", text)
    head = parts[0]
    head = re.sub(r"Got error\(s\) during query resolution\.\s*", "", head)
    head = re.sub(r"Error #\d+:\s*Message:\s*", "", head)
    return " ".join(head.split())
