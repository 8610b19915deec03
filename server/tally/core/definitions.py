"""A metric's definition beyond its catalog entry, for telling it in words (MCP's explain): a
derived metric's expression, a cumulative metric's window or grain to date, and the dbt
models its measures read. Read from the semantic manifest once per question; MetricFlow's own
objects stay behind this module and the compiler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tally.core.catalog import MeasureInfo
from tally.core.compiler import Compiler


@dataclass(frozen=True)
class ModelInfo:
    """The dbt model behind a semantic model, as the warehouse names its relation."""

    semantic_model: str
    dbt_model: str
    relation: str


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    expr: str | None = None  # a derived metric's expression over its inputs
    window: str | None = None  # a cumulative metric's trailing window ("7 days")
    grain_to_date: str | None = None  # a cumulative metric's period to date ("month")
    models: tuple[ModelInfo, ...] = ()


def metric_definition(
    compiler: Compiler, name: str, measures: tuple[MeasureInfo, ...]
) -> MetricDefinition:
    """The definition of metric `name` (known to the compiler) whose measures are given."""
    raw = next((m for m in compiler.loaded.manifest.metrics if m.name == name), None)
    tp = raw.type_params if raw is not None else None
    window = grain = None
    if tp is not None:
        params = getattr(tp, "cumulative_type_params", None)
        found: Any = getattr(params, "window", None) or getattr(tp, "window", None)
        if found is not None:
            window = f"{found.count} {found.granularity}"
        to_date = getattr(params, "grain_to_date", None) or getattr(tp, "grain_to_date", None)
        grain = str(getattr(to_date, "value", to_date)) if to_date else None
    wanted = {m.semantic_model for m in measures}
    models = []
    for model in compiler.loaded.manifest.semantic_models:
        if model.name in wanted:
            relation = model.node_relation
            models.append(ModelInfo(
                model.name, relation.alias,
                relation.relation_name or f"{relation.schema_name}.{relation.alias}",
            ))  # fmt: skip
    return MetricDefinition(
        name=name,
        expr=(tp.expr or None) if tp is not None else None,
        window=window,
        grain_to_date=grain,
        models=tuple(sorted(models, key=lambda m: m.semantic_model)),
    )
