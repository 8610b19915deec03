"""explain_metric: one metric told in words an agent can repeat to a person (its definition,
type, inputs and filters, the dbt models it reads, what it can be cut by, its unit) and the SQL
of a default query, as the caller would run it."""

from __future__ import annotations

from typing import Any

from tally.core.caller import Caller
from tally.core.catalog import MeasureInfo, MetricInfo
from tally.core.definitions import MetricDefinition
from tally.core.request import QueryRequest
from tally.mcp.answers import unit_of
from tally.service import TallyService

MAX_DIMENSIONS = 200


def _words(metric: MetricInfo, measures: tuple[MeasureInfo, ...], definition: MetricDefinition,
           unit: str) -> str:  # fmt: skip
    """The definition in one or two sentences, from the metric's own type parameters."""
    if metric.type == "simple" and measures:
        m = measures[0]
        # The measure's SQL expression only for a caller with the `sql` scope (list_measures
        # leaves it empty otherwise); its name says what it sums all the same.
        what = f"`{m.expr}`" if m.expr else f"the measure {m.name}"
        how = f"the {m.agg} of {what} in {m.semantic_model}"
    elif metric.type == "ratio" and len(metric.inputs) >= 2:
        how = f"{metric.inputs[0]} divided by {metric.inputs[1]}"
    elif metric.type == "derived" and definition.expr:
        how = f"`{definition.expr}` over the metrics {', '.join(metric.inputs)}"
    elif metric.type == "cumulative":
        span = (f"over a window of {definition.window}" if definition.window
                else f"{definition.grain_to_date} to date" if definition.grain_to_date
                else "over all history")  # fmt: skip
        how = f"a running total of {', '.join(metric.inputs) or 'its measure'} {span}"
    elif metric.type == "conversion":
        how = f"a conversion rate between {', '.join(metric.inputs) or 'two events'}"
    else:
        how = f"computed from {', '.join(metric.inputs) or 'its measure'}"
    text = f"{metric.label or metric.name} is a {metric.type} metric: {how}."
    if metric.filter:
        text += f" Only rows where {metric.filter} count."
    if metric.description:
        text += f" {metric.description.strip()}"
    return f"{text} Unit: {unit}."


def explain(service: TallyService, name: str, caller: Caller) -> dict[str, Any]:
    """Blocking (call it in the service's pool)."""
    metric = service.get_metric(name, caller)
    measures = service.list_measures((metric.name,), caller)
    unit = unit_of(metric, measures)
    definition = service.metric_definition(metric.name, caller)
    dims = service.list_dimensions((metric.name,), caller)
    entities = service.list_entities((metric.name,), caller)
    group_bys = [
        {"name": d.name, "type": d.type, **({"grains": list(d.grains)} if d.grains else {})}
        for d in dims
    ]
    body: dict[str, Any] = {
        "name": metric.name,
        "label": metric.label,
        "type": metric.type,
        "unit": unit,
        "definition": _words(metric, measures, definition, unit),
        "description": metric.description,
        "inputs": list(metric.inputs),
        "filter": metric.filter,
        "measures": [
            {"name": m.name, "agg": m.agg, "expr": m.expr or None,
             "semantic_model": m.semantic_model}
            for m in measures
        ],
        "dbt_models": [{"semantic_model": m.semantic_model, "dbt_model": m.dbt_model,
                        "relation": m.relation} for m in definition.models],
        "dimensions": group_bys[:MAX_DIMENSIONS],
        "entities": [e.name for e in entities],
        "requires_metric_time": metric.requires_metric_time,
    }
    if len(group_bys) > MAX_DIMENSIONS:
        body["dimensions_truncated"] = True
    times = [d for d in dims if d.name == "metric_time"]
    group_by = ()
    if times:
        grains = times[0].grains
        group_by = (f"metric_time__{'month' if 'month' in grains else grains[0]}",) if grains else (
            "metric_time",)  # fmt: skip
    default = QueryRequest.create(metrics=[metric.name], group_by=list(group_by))
    body["default_query"] = {"metrics": [metric.name], "group_by": list(group_by)}
    if caller.has("sql"):
        body["default_query"]["sql"] = service.compile(default, caller).sql
    else:
        body["default_query"]["sql"] = None
        body["default_query"]["note"] = "Your token lacks the `sql` scope: SQL is not shown."
    return body
