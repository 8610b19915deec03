"""Warehouse checks, through tally's own Warehouse and compiler (the path queries take): each
semantic model's table exists, each entity, dimension and measure expression runs on it, time
dimensions are dates, and every metric and saved query runs (with a limit)."""

from __future__ import annotations

import re
import time
from typing import Any

import pyarrow as pa

from tally.core.engine import Warehouse
from tally.core.request import QueryRequest
from tally.errors import TallyError, suggestion_suffix
from tally.validate.compile_rules import metric_request, quiet_metricflow, unqueryable_name
from tally.validate.context import Context
from tally.validate.findings import Severity, Stage, register_rule

DW_CONNECTION = register_rule(
    "dw_connection", Stage.WAREHOUSE, Severity.ERROR, "the warehouse answers",
    "check the dbt profile's target (tally reads the same profiles.yml) and that it is built",
)  # fmt: skip
DW_TABLE = register_rule(
    "dw_table", Stage.WAREHOUSE, Severity.ERROR, "every semantic model's table exists",
    "build the model (`dbt build -s <model>`) or fix the semantic model's `model: ref(...)`",
)  # fmt: skip
DW_COLUMN = register_rule(
    "dw_column", Stage.WAREHOUSE, Severity.ERROR,
    "every entity, dimension and measure expression runs on its table",
    "use a column the table has, or fix the `expr:`",
)  # fmt: skip
DW_TIME_TYPE = register_rule(
    "dw_time_type", Stage.WAREHOUSE, Severity.ERROR,
    "every time dimension is a date or timestamp in the warehouse",
    "cast it in the mart or in `expr:` (e.g. cast(created_at as date))",
)  # fmt: skip
DW_METRIC = register_rule(
    "dw_metric", Stage.WAREHOUSE, Severity.ERROR, "every metric runs on the warehouse",
    "run `tally query --metrics <metric> --group-by metric_time --explain` and fix what fails",
)  # fmt: skip
DW_SAVED_QUERY = register_rule(
    "dw_saved_query", Stage.WAREHOUSE, Severity.ERROR, "every saved query runs on the warehouse",
    "run `tally query --saved-query <name>` and fix what fails",
)  # fmt: skip

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ELEMENTS = (("entities", "entity"), ("dimensions", "dimension"), ("measures", "measure"))


class _Progress:
    def __init__(self, ctx: Context, total: int) -> None:
        self.ctx, self.total, self.done, self.last = ctx, total, 0, 0.0

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done == self.total or now - self.last >= 2.0:
            self.ctx.progress(f"warehouse checks: {self.done}/{self.total}")
            self.last = now


def run_warehouse_checks(ctx: Context, warehouse: Warehouse, timeout: float | None) -> None:
    try:
        warehouse.ping()
    except TallyError as e:
        ctx.add(DW_CONNECTION, f"cannot query the warehouse: {e.message}")
        return
    models = ctx.semantic.get("semantic_models", [])
    metrics = sorted(ctx.compiler.metrics) if ctx.compiler else []
    saved = [q["name"] for q in ctx.semantic.get("saved_queries", [])] if ctx.compiler else []
    elements = sum(len(m.get(key, [])) for m in models for key, _ in _ELEMENTS)
    progress = _Progress(ctx, len(models) + elements + len(metrics) + len(saved))
    ctx.progress(f"warehouse checks: 0/{progress.total}")
    for model in models:
        _check_model(ctx, warehouse, model, timeout, progress)
    if ctx.enabled(DW_METRIC):
        for name in metrics:
            _check_metric(ctx, warehouse, name, timeout)
            progress.step()
    if ctx.enabled(DW_SAVED_QUERY):
        for name in saved:
            _check_saved_query(ctx, warehouse, name, timeout)
            progress.step()


def relation_of(model: dict[str, Any]) -> str:
    rel = model.get("node_relation") or {}
    if rel.get("relation_name"):
        return str(rel["relation_name"])
    parts = [rel.get("database"), rel.get("schema_name"), rel.get("alias")]
    return ".".join(f'"{p}"' for p in parts if p)


def _check_model(
    ctx: Context, warehouse: Warehouse, model: dict[str, Any], timeout: float | None,
    progress: _Progress,
) -> None:  # fmt: skip
    name = model["name"]
    relation = relation_of(model)
    ctx.report.count(DW_TABLE.id)
    try:
        columns = warehouse.execute(f"select * from {relation} limit 0", timeout).column_names
    except TallyError as e:
        ctx.add(DW_TABLE, f"semantic model '{name}': table {relation} cannot be read: "
                f"{e.message}", kind="semantic_model", element=name, field="model")  # fmt: skip
        for key, _ in _ELEMENTS:
            for _ in model.get(key, []):
                progress.step()
        return
    finally:
        progress.step()
    lower = {c.lower(): c for c in columns}
    for key, kind in _ELEMENTS:
        for element in model.get(key, []):
            _check_element(ctx, warehouse, model, relation, kind, element, lower, timeout)
            progress.step()


def _check_element(
    ctx: Context, warehouse: Warehouse, model: dict[str, Any], relation: str, kind: str,
    element: dict[str, Any], columns: dict[str, str], timeout: float | None,
) -> None:  # fmt: skip
    expr = str(element.get("expr") or element["name"])
    qualified = f"{model['name']}.{element['name']}"
    what = f"{kind} '{element['name']}' of semantic model '{model['name']}'"
    field = "expr" if element.get("expr") else "name"
    is_time = kind == "dimension" and element.get("type") == "time"
    if ctx.enabled(DW_COLUMN):
        ctx.report.count(DW_COLUMN.id)
        if _IDENT.match(expr) and expr.lower() not in columns:
            suffix, best = suggestion_suffix(expr, list(columns.values()))
            ctx.add(DW_COLUMN, f"{what}: column '{expr}' does not exist in {relation}.{suffix}",
                    kind=kind, element=qualified, field=field,
                    hint=f"use column '{best}' (or add `expr: {best}`)" if best else None)
            return  # fmt: skip
    try:
        result = warehouse.execute(f"select {expr} as tally_check from {relation} limit 0",
                                   timeout)  # fmt: skip
    except TallyError as e:
        if ctx.enabled(DW_COLUMN):
            ctx.add(DW_COLUMN, f"{what}: `{expr}` does not run on {relation}: {e.message}",
                    kind=kind, element=qualified, field=field)  # fmt: skip
        return
    if is_time and ctx.enabled(DW_TIME_TYPE):
        ctx.report.count(DW_TIME_TYPE.id)
        dtype = result.schema.field(0).type
        if not (pa.types.is_date(dtype) or pa.types.is_timestamp(dtype)):
            ctx.add(DW_TIME_TYPE, f"time {what} is {dtype} in the warehouse, not a date or "
                    "timestamp", kind=kind, element=qualified, field=field)  # fmt: skip


def _sql(ctx: Context, kind: str, name: str) -> tuple[str | None, str | None]:
    """(SQL, None), or (None, why it does not compile). The tally stage compiled most of it
    already (saved_query_compiles, metric_compiles); what failed there is reported there."""
    if (kind, name) in ctx.compiled:
        return ctx.compiled[(kind, name)], None
    try:
        if kind == "metric":
            request = metric_request(ctx.compiler, name)
        else:
            request = QueryRequest.create(saved_query=name)
        with quiet_metricflow():
            return ctx.compiler.compile(request, limit=1).sql, None
    except TallyError as e:
        return None, e.message


def _check_metric(ctx: Context, warehouse: Warehouse, name: str, timeout: float | None) -> None:
    if ("metric", name) in ctx.uncompiled or unqueryable_name(ctx, DW_METRIC, name):
        return  # reported by metric_compiles or a naming rule: one finding per root cause
    ctx.report.count(DW_METRIC.id)
    sql, error = _sql(ctx, "metric", name)
    if sql is None:
        ctx.add(DW_METRIC, f"metric '{name}' does not compile: {error}", kind="metric",
                element=name)  # fmt: skip
        return
    try:
        warehouse.execute(sql, timeout)
    except TallyError as e:
        ctx.add(DW_METRIC, f"metric '{name}' fails on the warehouse: {e.message}",
                kind="metric", element=name)  # fmt: skip


def _check_saved_query(
    ctx: Context, warehouse: Warehouse, name: str, timeout: float | None
) -> None:
    if ("saved_query", name) in ctx.uncompiled:
        return  # reported by saved_query_compiles
    ctx.report.count(DW_SAVED_QUERY.id)
    sql, error = _sql(ctx, "saved_query", name)
    try:
        if sql is None:
            raise TallyError(f"it does not compile: {error}")
        warehouse.execute(sql, timeout)
    except TallyError as e:
        ctx.add(DW_SAVED_QUERY, f"saved query '{name}' fails on the warehouse: {e.message}",
                kind="saved_query", element=name)  # fmt: skip
