"""What a statement returns: `semantic_layer.query(...)` runs through the service (cache,
single flight, telemetry) as the caller; the catalog calls return small Arrow tables of the
catalog, one row per item."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tally.core.caller import Caller
from tally.core.results import values_only
from tally.flight import statement as st
from tally.service import TallyService

_STRINGS = pa.list_(pa.string())


@dataclass(frozen=True)
class Answer:
    table: pa.Table
    sql: str | None = None


def run(svc: TallyService, statement: st.Statement, caller: Caller) -> Answer:
    """The answer to a parsed statement (for a Flight handler's thread)."""
    call = statement.call
    if call == "query":
        saved = statement.get("saved_query")
        # An unknown saved query in a statement is a bad argument (INVALID_ARGUMENT).
        saved_group_bys = (
            svc.saved_query_group_bys(saved, caller) if isinstance(saved, str) else ()
        )
        request = st.to_request(statement, saved_group_bys)
        if st.flag(statement, "compile", False):
            sql = svc.compile(request, caller).sql
            return Answer(pa.table({"sql": [sql]}), sql)
        result = svc.query(request, caller, use_cache=st.flag(statement, "read_cache", True))
        return Answer(result.table, result.sql)
    if call == "dimension_values":
        request = svc.dimension_values_request(
            st.dimension_of(statement), st.names(statement, "metrics"),
            statement.get("limit"), None, None, caller,
        )
        result = values_only(svc.query(request, caller))
        return Answer(result.table, result.sql)
    metrics = st.names(statement, "metrics")
    if call in ("metrics", "metrics_for_dimensions"):
        infos = svc.metrics_for(st.names(statement, "group_by"), caller) if call != "metrics" \
            else svc.list_metrics(caller)
        return Answer(_metrics(svc, infos, caller))
    if call == "dimensions":
        dims = svc.list_dimensions(metrics, caller)
        return Answer(pa.table({
            "name": [d.name for d in dims],
            "qualified_name": [d.name for d in dims],
            "label": [d.label for d in dims],
            "description": [d.description for d in dims],
            "type": [d.type.upper() for d in dims],
            "queryable_granularities": pa.array([list(d.grains) for d in dims], _STRINGS),
            "entity_path": pa.array([list(d.entity_path) for d in dims], _STRINGS),
        }))
    if call == "entities":
        ents = svc.list_entities(metrics, caller)
        return Answer(pa.table({
            "name": [e.name for e in ents], "label": [e.label for e in ents],
            "description": [e.description for e in ents],
            "type": [e.type.upper() for e in ents],
        }))
    if call == "measures":
        names = metrics or tuple(m.name for m in svc.list_metrics(caller))
        found = svc.list_measures(names, caller)
        return Answer(pa.table({
            "name": [m.name for m in found], "agg": [m.agg.upper() for m in found],
            "agg_time_dimension": pa.array([m.agg_time_dimension for m in found], pa.string()),
            "expr": [m.expr for m in found],
        }))
    if call == "saved_queries":
        queries = svc.list_saved_queries(caller)
        return Answer(pa.table({
            "name": [q.name for q in queries], "label": [q.label for q in queries],
            "description": [q.description for q in queries],
            "metrics": pa.array([list(q.metrics) for q in queries], _STRINGS),
            "group_by": pa.array([list(q.group_by) for q in queries], _STRINGS),
            "where": pa.array([list(q.where) for q in queries], _STRINGS),
        }))
    if call == "queryable_granularities":
        dims = svc.list_dimensions(metrics, caller)
        metric_time = next((d for d in dims if d.name == "metric_time"), None)
        grains = [g.upper() for g in (metric_time.grains if metric_time else ())]
        return Answer(pa.table({"queryable_granularities": pa.array(grains, pa.string())}))
    raise st.InvalidStatement(f"semantic_layer.{call}() is not served.")


def _metrics(svc: TallyService, infos: tuple, caller: Caller) -> pa.Table:
    dims, grains = [], []
    for m in infos:
        found = svc.list_dimensions((m.name,), caller)
        dims.append([d.name for d in found])
        metric_time = next((d for d in found if d.name == "metric_time"), None)
        grains.append([g.upper() for g in (metric_time.grains if metric_time else ())])
    return pa.table({
        "name": [m.name for m in infos],
        "label": [m.label for m in infos],
        "description": [m.description for m in infos],
        "type": [m.type.upper() for m in infos],
        "requires_metric_time": pa.array([m.requires_metric_time for m in infos], pa.bool_()),
        "dimensions": pa.array(dims, _STRINGS),
        "queryable_granularities": pa.array(grains, _STRINGS),
    })
