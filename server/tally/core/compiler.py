"""MetricFlow, wrapped: the catalog a manifest defines, and request -> SQL for one warehouse
engine.

The engine is built once per manifest over a compile-only SQL client (MetricFlow needs only
the engine type and the plan renderer to write SQL; execution goes through tally's own
warehouse layer). MetricFlow keeps global state (its id generator), so compiling happens under
a lock; executing the SQL does not need it. This module, semantic_manifest.py and catalog.py
are the only places that use MetricFlow's (unstable, pinned) Python API.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from metricflow.engine.metricflow_engine import (
    MetricFlowEngine,
    MetricFlowQueryRequest,
    OutputColumnOrderMode,
)
from metricflow.protocols.sql_client import SqlEngine
from metricflow_semantic_interfaces.references import MetricReference
from metricflow_semantic_interfaces.type_enums.date_part import DatePart
from metricflow_semantics.errors.error_classes import InformativeUserError
from metricflow_semantics.model.linkable_element_property import GroupByItemProperty
from metricflow_semantics.model.semantics.element_filter import GroupByItemSetFilter
from metricflow_semantics.model.semantics.linkable_element import LinkableElementType
from metricflow_semantics.specs.query_param_implementations import (
    DimensionOrEntityParameter,
    MetricParameter,
    OrderByParameter,
    TimeDimensionParameter,
)
from metricflow_semantics.time.time_spine_source import TimeSpineSource

from tally.core.catalog import (
    DimensionInfo,
    EntityInfo,
    MeasureInfo,
    MetricInfo,
    SavedQueryInfo,
    measure_infos,
    metric_info,
    saved_query_info,
)
from tally.core.engine import EngineSpec
from tally.core.grains import DATE_PARTS, grains_from
from tally.core.group_bys import GroupByIndex, GroupByItem, build_index
from tally.core.request import QueryRequest
from tally.core.reserved import quote_reserved, reserved_names
from tally.core.resolve import CheckedQuery, check_request
from tally.core.results import RollupStatus
from tally.core.semantic_manifest import LoadedManifest
from tally.errors import (
    CompileFault,
    InvalidQuery,
    ManifestMismatch,
    UnknownMetric,
    UnknownSavedQuery,
    shorten,
    suggestion_suffix,
)

log = logging.getLogger("tally.compiler")
Spec = tuple[str, str, tuple[str, ...], str, str | None, str | None]


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
    request: QueryRequest  # the request as compiled (saved query expanded, filters checked)
    # Result columns to rename to the name asked for (a short spelling of a multi-hop name).
    renames: tuple[tuple[str, str], ...] = ()
    # Which rollup the SQL reads (or why none could), when the service routed it.
    rollup: RollupStatus | None = None


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
        self._lock = threading.RLock()
        self._sql_cache: LRUCache = LRUCache(maxsize=2048)
        self._sql_cache_lock = threading.Lock()
        # Group-by indexes per metric set, owned by this compiler (a new manifest gets a new
        # compiler, and the old one's caches go with it).
        self._indexes: LRUCache = LRUCache(maxsize=1024)
        self.sql_cache_hits = 0
        self._engine = MetricFlowEngine(loaded.lookup, _CompileOnlyClient(engine))
        manifest = loaded.manifest
        self.custom_grains: tuple[str, ...] = tuple(
            loaded.lookup.semantic_model_lookup.custom_granularity_names
        )
        # The grains the project's time spines are at, finest first (cumulative and offset
        # metrics need a spine at the grain they are asked at).
        self.spine_grains: tuple[str, ...] = tuple(
            g.value for g in sorted(TimeSpineSource.build_standard_time_spine_sources(manifest))
        )
        # Semantic names MetricFlow may write as bare identifiers: entities, dimensions.
        self._reserved = reserved_names(
            (
                element.name
                for model in manifest.semantic_models
                for element in (*model.entities, *model.dimensions)
            ),
            engine.reserved_words,
        )
        # Metrics MetricFlow creates while loading (from measures, named like `revenue_1`) are
        # private: not the project's, never listed or queried by name.
        self.metrics: dict[str, MetricInfo] = {
            m.name: metric_info(m, loaded.metric_meta.get(m.name, {}))
            for m in manifest.metrics
            if not m.type_params.is_private
        }
        self._measures = measure_infos(manifest)
        self._input_measures: dict[str, tuple[str, ...]] = {
            m.name: tuple(i.name for i in m.type_params.input_measures or ())
            for m in manifest.metrics
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
            visible = [m for m, info in self.metrics.items() if not info.hidden]
            hint, best = suggestion_suffix(key, visible)
            raise UnknownMetric(f"Unknown metric {shorten(name)}.{hint}", suggestion=best,
                                asked=key, candidates=visible)  # fmt: skip
        return self.metrics[key]

    def saved_query(self, name: str) -> SavedQueryInfo:
        key = name.strip().lower()
        if key not in self.saved_queries:
            hint, best = suggestion_suffix(key, self.saved_queries)
            raise UnknownSavedQuery(f"Unknown saved query {shorten(name)}.{hint}",
                                    suggestion=best, asked=key,
                                    candidates=list(self.saved_queries))  # fmt: skip
        return self.saved_queries[key]

    def index(self, metrics: tuple[str, ...] = ()) -> GroupByIndex:
        """Everything `metrics` can be grouped and filtered by (all semantic models' own
        dimensions when no metric is given)."""
        key = tuple(sorted({self.metric(name).name for name in metrics}))
        found = self._indexes.get(key)
        if found is None:
            with self._lock:
                specs = list(self._specs(key) if key else self._model_specs())
            found = build_index(specs, *self._descriptions())
            self._indexes[key] = found
        return found

    def dimensions(self, metrics: tuple[str, ...] = ()) -> tuple[DimensionInfo, ...]:
        return self.index(metrics).dimensions

    def entities(self, metrics: tuple[str, ...] = ()) -> tuple[EntityInfo, ...]:
        return self.index(metrics).entities

    def measures(self, metrics: tuple[str, ...]) -> tuple[MeasureInfo, ...]:
        """The measures `metrics` aggregate (through ratios and derived metrics too)."""
        names: dict[str, None] = {}
        for metric in metrics:
            for name in self._input_measures.get(self.metric(metric).name, ()):
                names.setdefault(name)
        return tuple(self._measures[n] for n in names if n in self._measures)

    def _specs(self, metrics: tuple[str, ...]) -> Iterator[Spec]:
        """MetricFlow's own list of the group-by items common to `metrics`."""
        found = self.loaded.lookup.metric_lookup.get_common_group_by_items(
            metric_references=tuple(MetricReference(m) for m in metrics),
            set_filter=GroupByItemSetFilter.create(),
        )
        local = GroupByItemProperty.LOCAL
        kinds = {
            LinkableElementType.ENTITY: "entity",
            LinkableElementType.DIMENSION: "dimension",
            LinkableElementType.TIME_DIMENSION: "time_dimension",
        }
        for annotated in found.annotated_specs:
            kind = kinds.get(annotated.element_type)
            if kind is None:  # metrics as group-bys are not served
                continue
            spec = annotated.spec
            if kind == "entity" and spec.entity_links and local in annotated.property_set:
                continue  # rental__bike on rentals is the local entity `bike` again
            grain = annotated.time_grain.name if annotated.time_grain else None
            part = annotated.date_part.value if annotated.date_part else None
            links = tuple(link.element_name for link in spec.entity_links)
            yield spec.dunder_name, kind, links, spec.element_name, grain, part

    def _model_specs(self) -> Iterator[Spec]:
        """Without metrics: every semantic model's dimensions by its primary entity (what a
        dimension-only query can be grouped by), and metric_time."""
        finest = "day"
        for d in self._engine.list_dimensions():
            links = tuple(link.element_name for link in d.entity_links)
            if d.type.value != "time":
                yield d.dunder_name, "dimension", links, d.name, None, None
                continue
            grain = d.type_params.time_granularity.value if d.type_params else "day"
            finest = min(finest, grain, key=_grain_order)
            yield from _time_specs(links, d.name, grain, self.custom_grains)
        yield from _time_specs((), "metric_time", finest, self.custom_grains)
        for model in self.loaded.manifest.semantic_models:
            for e in model.entities:
                yield e.name, "entity", (), e.name, None, None

    def _descriptions(
        self,
    ) -> tuple[dict[str, tuple[str, str, str | None]], dict[str, tuple[str, str, str]]]:
        dims: dict[str, tuple[str, str, str | None]] = {
            "metric_time": (
                "Metric time",
                "The time of each metric's events (its aggregation time dimension), at the "
                "grain asked for.",
                None,
            )
        }
        entities: dict[str, tuple[str, str, str]] = {}
        for model in self.loaded.manifest.semantic_models:
            for d in model.dimensions:
                dims.setdefault(d.name, (d.label or "", d.description or "", model.name))
            for e in model.entities:
                current = entities.get(e.name)
                if current is None or (current[2] != "primary" and e.type.value == "primary"):
                    entities[e.name] = (e.label or "", e.description or "", e.type.value)
        return dims, entities

    # Compile ---------------------------------------------------------------------------

    def check(self, request: QueryRequest) -> QueryRequest:
        """The request with names checked against the catalog (typed errors with suggestions)
        and its filters as MetricFlow reads them."""
        return check_request(self, request).request

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
        checked = check_request(self, request)
        query = checked.request
        pairs = list(zip(query.group_by, checked.group_by, strict=True))
        params = {name: _group_by_param(item) for name, item in pairs}
        renames = tuple((item.name, name) for name, item in pairs if item.name != name)
        order_by = []
        for entry in query.row_order:
            name = entry.lstrip("-")
            target = params.get(name) or MetricParameter(name)
            order_by.append(OrderByParameter(target, descending=entry.startswith("-")))
        mf_request = MetricFlowQueryRequest.create(
            metric_names=list(query.metrics),
            group_by=list(params.values()) or None,
            where_constraints=list(query.where) or None,
            # Without an order, rows come in group-by order (time ascending), so the same
            # question always prints the same way and a limit keeps the earliest rows.
            order_by=order_by or None,
            limit=limit if limit is not None else query.limit,
            time_constraint_start=query.start,
            time_constraint_end=query.end,
            output_column_order_mode=OutputColumnOrderMode.TYPE_GROUPED,
        )
        with self._lock:
            try:
                sql = self._engine.explain(mf_request).sql_statement.sql
            except InformativeUserError as e:
                log.debug("MetricFlow refused a query", exc_info=True)
                raise_refusal(e, checked)
            except Exception as e:
                log.debug("MetricFlow failed on a query", exc_info=True)
                raise CompileFault(
                    f"MetricFlow could not compile this query: {mf_message(e)}"
                ) from None
        return CompiledQuery(
            sql=quote_reserved(sql, self._reserved, self.dialect), request=query, renames=renames
        )


def raise_refusal(e: Exception, checked: CheckedQuery) -> None:
    metrics = ", ".join(checked.request.metrics) or "this query"
    raise InvalidQuery(f"MetricFlow cannot answer {metrics} this way: {mf_message(e)}") from None


def mf_message(e: Exception) -> str:
    """MetricFlow's long multi-section message, shortened to its message and suggestions;
    never a traceback (those go to the debug log)."""
    text = str(e)
    text = re.split(r"\n\s*Traceback \(most recent call last\)", text)[0]
    parts = re.split(
        r"\n\s*(?:Query Input|Issue Location|Object Builder Input|Got exception):", text
    )
    head = parts[0]
    head = re.sub(r"Got error\(s\) during query resolution\.\s*", "", head)
    head = re.sub(r"Error #\d+:\s*Message:\s*", "", head)
    return " ".join(head.split())


def _group_by_param(item: GroupByItem) -> Any:
    if item.kind != "time_dimension":
        return DimensionOrEntityParameter(name=item.name)
    base = item.name
    if item.date_part:
        base = base.rsplit("__", 1)[0]
        return TimeDimensionParameter(name=base, date_part=DatePart(item.date_part))
    if item.grain and base.endswith(f"__{item.grain}"):
        base = base[: -len(item.grain) - 2]
    return TimeDimensionParameter(name=base, grain=item.grain)


_ORDER = ("nanosecond", "microsecond", "millisecond", "second", "minute", "hour", "day")


def _grain_order(grain: str) -> int:
    return _ORDER.index(grain) if grain in _ORDER else len(_ORDER)


def _time_specs(
    links: tuple[str, ...], element: str, grain: str, custom: tuple[str, ...]
) -> Iterator[Spec]:
    base = "__".join((*links, element))
    for g in grains_from(grain, custom):
        yield f"{base}__{g}", "time_dimension", links, element, g, None
    for part in DATE_PARTS:
        yield f"{base}__extract_{part}", "time_dimension", links, element, None, part
