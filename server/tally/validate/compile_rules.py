"""Compiling without running (tally stage, so `--skip-dw` still catches them): every metric by
metric_time, and every saved query, through tally's own compiler - the path every query takes.

One root cause, one finding: a metric whose input metric does not compile, or whose name is
already reported as invalid, and a saved query with such a metric are not reported again here;
the warehouse checks skip whatever did not compile (dw.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from tally.core.request import QueryRequest
from tally.errors import TallyError, suggestion_suffix
from tally.validate.context import Context
from tally.validate.findings import Rule, Severity, Stage, register_rule

METRIC_COMPILES = register_rule(
    "metric_compiles", Stage.TALLY, Severity.ERROR,
    "every metric compiles to SQL by metric_time (compiled, not run)",
    "fix what the message names (often a Dimension(...) in a filter); `tally compile --metrics "
    "<metric> --group-by metric_time` shows the same error",
)  # fmt: skip
SAVED_QUERY_COMPILES = register_rule(
    "saved_query_compiles", Stage.TALLY, Severity.ERROR, "every saved query compiles to SQL",
    "make the saved query's metrics and group-bys a combination MetricFlow can answer",
)  # fmt: skip

# Rules that report an invalid name: a metric they flag is not reported again as unqueryable.
NAME_RULES = ("mf_unique_and_valid_name", "dbt_semantic", "snake_case_name")
_INVALID_NAME = re.compile(r"\binvalid name\b", re.IGNORECASE)
_REF = re.compile(r"\b(Dimension|TimeDimension|Entity)\(\s*'([\w]+)'")


@contextmanager
def quiet_metricflow() -> Iterator[None]:
    """MetricFlow logs a full traceback (hundreds of lines, on stderr) before it gives up on a
    query it cannot plan; the finding says what failed, in one line."""
    loggers = [logging.getLogger(n) for n in ("metricflow", "metricflow_semantics")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def metric_request(compiler: Any, name: str) -> QueryRequest:
    """By metric_time at the metric's finest grain, but not finer than the project's finest
    time spine: the path most dashboards take, and the one that joins cumulative and offset
    metrics to the time spine (which MetricFlow can do only at a spine's grain or coarser)."""
    dims = compiler.dimensions((name,))
    grains = next((d.grains for d in dims if d.name == "metric_time"), ("day",))
    spine = compiler.spine_grains[0] if compiler.spine_grains else "day"
    grain = spine if spine in grains and grains.index(spine) > 0 else grains[0]
    return QueryRequest.create(metrics=[name], group_by=[f"metric_time__{grain}"])


def has_error(
    ctx: Context, kind: str, element: str, rules: tuple[str, ...] | None = None
) -> bool:
    """Whether one of `rules` (default: any rule of an earlier stage, dbt's or MetricFlow's)
    already reported the element as an error (after the project file's severities)."""
    for f in ctx.report.findings:
        ruled = f.rule in rules if rules else f.stage in (Stage.DBT, Stage.METRICFLOW)
        if ruled and f.kind == kind and f.element == element:
            configured = ctx.config.rules.get(f.rule)
            severity = configured.severity if configured and configured.severity else f.severity
            if severity == Severity.ERROR and ctx.enabled_id(f.rule):
                return True
    return False


def unqueryable_name(ctx: Context, rule: Rule, name: str) -> bool:
    """A metric name with capitals cannot be asked for: queries look names up in lower case.
    Reported under `rule` unless a naming rule already reported the name."""
    if name == name.lower():
        return False
    if not has_error(ctx, "metric", name, NAME_RULES):
        ctx.add(rule, f"metric '{name}' cannot be queried: metric names are looked up in lower "
                f"case ('{name.lower()}')", kind="metric", element=name,
                hint="rename it in lower snake_case (and every reference to it)")  # fmt: skip
    return True


def run_compile_rules(ctx: Context) -> None:
    if ctx.compiler is None:
        return
    with quiet_metricflow():
        if ctx.enabled(METRIC_COMPILES):
            _metrics(ctx)
        if ctx.enabled(SAVED_QUERY_COMPILES):
            _saved_queries(ctx)


def _metrics(ctx: Context) -> None:
    failed: dict[str, TallyError] = {}
    for name in sorted(ctx.compiler.metrics):
        ctx.report.count(METRIC_COMPILES.id)
        if unqueryable_name(ctx, METRIC_COMPILES, name) or has_error(ctx, "metric", name):
            ctx.uncompiled.add(("metric", name))  # reported already: one root cause, one finding
            continue
        try:
            ctx.compiled[("metric", name)] = ctx.compiler.compile(
                metric_request(ctx.compiler, name), limit=1
            ).sql
        except TallyError as e:
            failed[name] = e
            ctx.uncompiled.add(("metric", name))
    by_name = {m["name"]: m for m in ctx.semantic.get("metrics", [])}
    for name, error in failed.items():
        broken_inputs = [i for i in _inputs(by_name.get(name, {})) if i in failed]
        if broken_inputs:
            continue  # its input's finding is the root cause
        _report_metric(ctx, name, by_name.get(name, {}), error)


def _inputs(metric: dict[str, Any]) -> list[str]:
    tp = metric.get("type_params") or {}
    names = [(tp.get(k) or {}).get("name") for k in ("numerator", "denominator")]
    names += [m.get("name") for m in tp.get("metrics") or []]
    return [n for n in names if n]


def _filter_texts(metric: dict[str, Any]) -> list[str]:
    """The metric's own filters and those it puts on its input metrics."""
    filters = [metric.get("filter")]
    tp = metric.get("type_params") or {}
    filters += [(tp.get(k) or {}).get("filter") for k in ("numerator", "denominator")]
    filters += [m.get("filter") for m in tp.get("metrics") or []]
    return [w.get("where_sql_template", "") for f in filters if f
            for w in f.get("where_filters") or []]  # fmt: skip


def _report_metric(ctx: Context, name: str, metric: dict[str, Any], error: TallyError) -> None:
    """The compiler's message, or - when a filter names something the metric cannot be
    grouped by (MetricFlow's message does not say which) - that reference, on its line."""
    try:
        known = {d.name for d in ctx.compiler.dimensions((name,))}
        known |= {e.name for e in ctx.compiler.entities((name,))}
    except TallyError:
        known = set()
    for text in _filter_texts(metric) if known else []:
        for kind, ref in _REF.findall(text):
            if ref in known:
                continue
            suffix, best = suggestion_suffix(ref, known)
            listing = f"`tally list dimensions --metrics {name}`"
            ctx.add(METRIC_COMPILES,
                    f"metric '{name}' does not compile: its filter references {kind}('{ref}'), "
                    f"which is not a dimension or entity the metric can be grouped by.{suffix}",
                    kind="metric", element=name,
                    location=ctx.locator.value_line("metric", name, ref),
                    hint=f"use {kind}('{best}')" if best else
                    f"use one of its dimensions ({listing})")  # fmt: skip
            return
    ctx.add(METRIC_COMPILES, f"metric '{name}' does not compile: {error.message}",
            kind="metric", element=name,
            location=ctx.locator.refine("metric", name, error.message))  # fmt: skip


def _saved_queries(ctx: Context) -> None:
    for q in ctx.semantic.get("saved_queries", []):
        ctx.report.count(SAVED_QUERY_COMPILES.id)
        metrics = (q.get("query_params") or {}).get("metrics") or []
        if any(("metric", m) in ctx.uncompiled for m in metrics):
            # A metric of it was reported already (or did not compile): the root cause.
            ctx.uncompiled.add(("saved_query", q["name"]))
            continue
        try:
            ctx.compiled[("saved_query", q["name"])] = ctx.compiler.compile(
                QueryRequest.create(saved_query=q["name"]), limit=1
            ).sql
        except TallyError as e:
            ctx.uncompiled.add(("saved_query", q["name"]))
            message = f"saved query '{q['name']}' does not compile: {e.message}"
            ctx.add(SAVED_QUERY_COMPILES, message, kind="saved_query", element=q["name"],
                    location=ctx.locator.refine("saved_query", q["name"], e.message))


def merge_name_findings(ctx: Context, kind: str, element: str, hint: str) -> bool:
    """When dbt or MetricFlow already reported the element's name as invalid, give that
    finding tally's rename hint instead of reporting the same name twice. Returns whether it
    did."""
    for i, f in enumerate(ctx.report.findings):
        same = f.kind == kind and f.element == element and _INVALID_NAME.search(f.message)
        if same and has_error(ctx, kind, element, (f.rule,)):
            ctx.report.findings[i] = replace(f, hint=hint)
            return True
    return False
