"""The catalog as a caller may see it: metrics, dimensions, entities, measures, saved queries and
everything a transport reads about them (a saved query's group-bys, the custom grains, a
metric's time grains and definition), each checked against the caller. Transports read the
catalog here, never through the compiler, so no transport can skip a visibility check."""

from __future__ import annotations

from dataclasses import replace

from tally.core.caller import Caller
from tally.core.catalog import (
    DimensionInfo,
    EntityInfo,
    MeasureInfo,
    MetricInfo,
    SavedQueryInfo,
)
from tally.core.compiler import Compiler
from tally.core.definitions import MetricDefinition, metric_definition
from tally.core.request import QueryRequest
from tally.errors import CallerError, Forbidden, NotFound
from tally.service.access import (
    authorize,
    check_dimensions,
    may_see,
    require,
    visible_dimensions,
    visible_entities,
    visible_errors,
    visible_filter,
    visible_metrics,
)
from tally.service.runtime import Runtime


class Catalog:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def list_metrics(self, caller: Caller) -> tuple[MetricInfo, ...]:
        """The project's metrics this caller may see, without hidden ones (they can still be
        queried by name)."""
        require(caller, "meta")
        compiler = self.rt.compiler
        metrics = (m for m in compiler.metrics.values() if not m.hidden)
        shown = visible_metrics(tuple(sorted(metrics, key=lambda m: m.name)), caller)
        return tuple(visible_filter(compiler, m, caller) for m in shown)

    def get_metric(self, name: str, caller: Caller) -> MetricInfo:
        """One metric by name, spelt in any case; NotFound (404) when there is none, Forbidden
        (403) when the caller may not see it."""
        require(caller, "meta")
        compiler = self.rt.compiler
        try:
            with visible_errors(caller, lambda: compiler):
                metric = compiler.metric(name)
        except CallerError as e:
            raise NotFound.of(e) from None
        if caller.grant is not None:
            caller.grant.check_metric(metric.name)
        return visible_filter(compiler, metric, caller)

    def list_dimensions(
        self, metrics: tuple[str, ...], caller: Caller
    ) -> tuple[DimensionInfo, ...]:
        compiler = self._checked(metrics, caller)
        return visible_dimensions(compiler.dimensions(metrics), caller)

    def list_entities(self, metrics: tuple[str, ...], caller: Caller) -> tuple[EntityInfo, ...]:
        compiler = self._checked(metrics, caller)
        return visible_entities(compiler.entities(metrics), caller)

    def list_measures(self, metrics: tuple[str, ...], caller: Caller) -> tuple[MeasureInfo, ...]:
        """The measures the metrics aggregate; their SQL expression only with the `sql`
        scope (empty otherwise)."""
        measures = self._checked(metrics, caller).measures(metrics)
        if caller.has("sql"):
            return measures
        return tuple(replace(m, expr="") for m in measures)

    def metrics_for(self, group_by: tuple[str, ...], caller: Caller) -> tuple[MetricInfo, ...]:
        """The listed metrics (that this caller may see) that can be grouped by every one of
        `group_by`; Forbidden (403) for a group-by the caller may not see."""
        compiler = self.rt.compiler
        check_dimensions(compiler, group_by, caller)
        return tuple(
            m
            for m in self.list_metrics(caller)
            if all(compiler.index((m.name,)).resolve(name) is not None for name in group_by)
        )

    def metric_time(self, metric: str, caller: Caller) -> DimensionInfo | None:
        """The metric's metric_time (its grains), or None when it has none."""
        compiler = self._checked((metric,), caller)
        return compiler.index((compiler.metric(metric).name,)).time_dimension("metric_time")

    def metrics_among(self, names: list[str], caller: Caller) -> dict[str, MetricInfo]:
        """Which of `names` (a result's columns) are metrics, hidden ones included, each as
        its MetricInfo: for a caller who may query them (the `query` scope)."""
        require(caller, "query")
        known = self.rt.compiler.metrics
        grant = caller.grant
        return {n: known[n] for n in names
                if n in known and (grant is None or grant.may_see_metric(n))}  # fmt: skip

    def metric_definition(self, name: str, caller: Caller) -> MetricDefinition:
        """A metric's definition beyond its catalog entry (explain): its expression, window
        and the dbt models it reads."""
        metric = self.get_metric(name, caller)
        measures = self.list_measures((metric.name,), caller)
        return metric_definition(self.rt.compiler, metric.name, measures)

    def custom_grains(self, caller: Caller) -> tuple[str, ...]:
        """The project's custom time grains (fiscal quarters...)."""
        require(caller, "meta")
        return self.rt.compiler.custom_grains

    def list_saved_queries(self, caller: Caller) -> tuple[SavedQueryInfo, ...]:
        """The saved queries this caller may run (every metric and dimension allowed)."""
        require(caller, "meta")
        compiler = self.rt.compiler
        queries = sorted(compiler.saved_queries.values(), key=lambda q: q.name)
        if caller.grant is None:
            return tuple(queries)
        return tuple(q for q in queries if _may_run(compiler, q.name, caller))

    def get_saved_query(self, name: str, caller: Caller) -> SavedQueryInfo:
        require(caller, "meta")
        compiler = self.rt.compiler
        try:
            with visible_errors(caller, lambda: compiler):
                saved = compiler.saved_query(name)
        except CallerError as e:
            raise NotFound.of(e) from None
        if caller.grant is not None:
            authorize(compiler, QueryRequest(saved_query=saved.name), caller)
        return saved

    def saved_query_group_bys(self, name: str, caller: Caller) -> tuple[str, ...]:
        """The group-bys of a saved query the caller would run (to shape a request around it):
        unknown_saved_query (400) with suggestions the caller may see, Forbidden (403) for one
        it may not run."""
        require(caller, "query")
        compiler = self.rt.compiler
        with visible_errors(caller, lambda: compiler):
            saved = compiler.saved_query(name)
        authorize(compiler, QueryRequest(saved_query=saved.name), caller)
        return saved.group_by

    def may_see(self, request: QueryRequest, caller: Caller) -> bool:
        """Whether the caller may see every metric and dimension the request names (a
        dashboard's tile); an unknown name counts as not visible."""
        try:
            return may_see(self.rt.compiler, request, caller)
        except CallerError:
            return False

    def _checked(self, metrics: tuple[str, ...], caller: Caller) -> Compiler:
        """The compiler, once the caller has the `meta` scope and may see each metric."""
        require(caller, "meta")
        compiler = self.rt.compiler
        if caller.grant is not None:
            with visible_errors(caller, lambda: compiler):
                for name in metrics:
                    caller.grant.check_metric(compiler.metric(name).name)
        return compiler


def _may_run(compiler: Compiler, saved_query: str, caller: Caller) -> bool:
    try:
        authorize(compiler, QueryRequest(saved_query=saved_query), caller)
    except Forbidden:
        return False
    return True
