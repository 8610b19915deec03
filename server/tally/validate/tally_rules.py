"""tally's own rules: what MetricFlow accepts but a team reviewing a metric change should not.

Each rule has an id, a default severity and a one-line fix hint (`tally validate --list-rules`);
the project file can disable it or change its severity (config.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from tally.errors import suggestion_suffix
from tally.validate.compile_rules import merge_name_findings, run_compile_rules
from tally.validate.context import Context
from tally.validate.dashboard_rules import run_dashboard_rules
from tally.validate.findings import Severity, Stage, register_rule

# tally's own style rules (labels, descriptions, names, owners, duplicates) are warnings by
# default, so a project that dbt and MetricFlow accept is green on day one; a project makes
# them errors in its tally.yml (`rules: {metric_label: error}`) or with --strict. dbt's and
# MetricFlow's errors, and a broken exposure, stay errors.

METRIC_LABEL = register_rule(
    "metric_label", Stage.TALLY, Severity.WARNING, "every metric has a label",
    "add `label:` to the metric: dashboards and the API show it",
)  # fmt: skip
METRIC_DESCRIPTION = register_rule(
    "metric_description", Stage.TALLY, Severity.WARNING, "every metric has a description",
    "add `description:` saying what the metric counts and how (filters, grain, caveats)",
)  # fmt: skip
DIMENSION_LABEL = register_rule(
    "dimension_label", Stage.TALLY, Severity.WARNING, "every dimension has a label",
    "add `label:` to the dimension in its semantic model",
)  # fmt: skip
DIMENSION_DESCRIPTION = register_rule(
    "dimension_description", Stage.TALLY, Severity.WARNING, "every dimension has a description",
    "add `description:` to the dimension: its values and what they mean",
)  # fmt: skip
SNAKE_CASE = register_rule(
    "snake_case_name", Stage.TALLY, Severity.WARNING,
    "names of metrics, models, dimensions, entities, measures, saved queries are snake_case",
    "rename to lower snake_case (letters, digits, single underscores)",
)  # fmt: skip
EXPOSURE_METRIC = register_rule(
    "exposure_metric_exists", Stage.TALLY, Severity.ERROR,
    "every metric an exposure names (meta.metrics) exists",
    "name an existing metric in the exposure's meta.metrics, or restore the metric",
)  # fmt: skip
DUPLICATE_METRIC = register_rule(
    "duplicate_metric", Stage.TALLY, Severity.WARNING, "no two metrics have identical definitions",
    "remove the copy and use the existing metric, or make the difference explicit",
)  # fmt: skip
METRIC_OWNER = register_rule(
    "metric_owner", Stage.TALLY, Severity.WARNING,
    "every metric's meta names an owner (when the project file sets require_owner)",
    "add `meta: {owner: '@team'}` to the metric",
)  # fmt: skip
MANIFEST_LOADS = register_rule(
    "manifest_loads", Stage.METRICFLOW, Severity.ERROR,
    "MetricFlow loads the semantic manifest and builds its query engine",
    "fix the definition the message names; tally cannot serve any query until then",
)  # fmt: skip

SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
# Fields that say what a metric is called and who owns it, not what it computes.
_NOT_DEFINITION = {"name", "label", "description", "metadata", "config", "meta", "tags"}


def run_tally_rules(ctx: Context) -> None:
    """Every rule the project file enables; metric_owner only when it sets require_owner."""
    _labels(ctx)
    _snake_case(ctx)
    _duplicates(ctx)
    _exposures(ctx)
    if ctx.config.require_owner:
        _owners(ctx)
    run_compile_rules(ctx)
    run_dashboard_rules(ctx)


def _blank(value: Any) -> bool:
    return not (isinstance(value, str) and value.strip())


def _labels(ctx: Context) -> None:
    for m in ctx.semantic.get("metrics", []):
        for rule, key in ((METRIC_LABEL, "label"), (METRIC_DESCRIPTION, "description")):
            if ctx.enabled(rule):
                ctx.report.count(rule.id)
                if _blank(m.get(key)):
                    ctx.add(rule, f"metric '{m['name']}' has no {key}", kind="metric",
                            element=m["name"])  # fmt: skip
    for model in ctx.semantic.get("semantic_models", []):
        for d in model.get("dimensions", []):
            element = f"{model['name']}.{d['name']}"
            for rule, key in ((DIMENSION_LABEL, "label"), (DIMENSION_DESCRIPTION, "description")):
                if ctx.enabled(rule):
                    ctx.report.count(rule.id)
                    if _blank(d.get(key)):
                        ctx.add(rule, f"dimension '{d['name']}' of semantic model "
                                f"'{model['name']}' has no {key}", kind="dimension",
                                element=element)  # fmt: skip


def _snake_case(ctx: Context) -> None:
    if not ctx.enabled(SNAKE_CASE):
        return
    named: list[tuple[str, str]] = []
    for model in ctx.semantic.get("semantic_models", []):
        named.append(("semantic_model", model["name"]))
        for key, kind in (("entities", "entity"), ("dimensions", "dimension"),
                          ("measures", "measure")):  # fmt: skip
            named += [(kind, f"{model['name']}.{e['name']}") for e in model.get(key, [])]
    named += [("metric", m["name"]) for m in ctx.semantic.get("metrics", [])]
    named += [("saved_query", q["name"]) for q in ctx.semantic.get("saved_queries", [])]
    for kind, element in named:
        ctx.report.count(SNAKE_CASE.id)
        name = element.rsplit(".", 1)[-1]
        if not SNAKE.match(name):
            better = re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", _decamel(name))).strip("_")
            hint = f"rename it to '{better}' (and its references)"
            if merge_name_findings(ctx, kind, element, hint):
                continue  # MetricFlow reported the same name as invalid: one finding
            ctx.add(SNAKE_CASE, f"{kind.replace('_', ' ')} name '{name}' is not snake_case",
                    kind=kind, element=element, hint=hint)  # fmt: skip


def _decamel(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def definition(metric: dict[str, Any]) -> str:
    """What a metric computes, canonically: everything but its name, words and owner."""
    body = {k: v for k, v in metric.items() if k not in _NOT_DEFINITION}
    return json.dumps(body, sort_keys=True, default=str)


def _duplicates(ctx: Context) -> None:
    if not ctx.enabled(DUPLICATE_METRIC):
        return
    first: dict[str, str] = {}
    metrics = ctx.semantic.get("metrics", [])
    # Report the later definition (in file order) as the copy.
    def order(m: dict[str, Any]) -> tuple[str, int]:
        loc = ctx.locator.find("metric", m["name"])
        return (str(loc.path), loc.line or 0) if loc else ("~", 0)

    for m in sorted(metrics, key=order):
        ctx.report.count(DUPLICATE_METRIC.id)
        key = definition(m)
        if key in first:
            ctx.add(DUPLICATE_METRIC,
                    f"metric '{m['name']}' has the same definition as '{first[key]}'",
                    kind="metric", element=m["name"],
                    hint=f"use '{first[key]}' instead of '{m['name']}', or make the "
                    "difference explicit (a filter, another measure)")  # fmt: skip
        else:
            first[key] = m["name"]


def exposure_metrics(exposure: dict[str, Any]) -> list[str]:
    """The metrics an exposure names: meta.metrics (tally's convention) and dbt's own list."""
    names: list[str] = []
    for meta in (exposure.get("meta") or {}, (exposure.get("config") or {}).get("meta") or {}):
        value = meta.get("metrics") or []
        names += [value] if isinstance(value, str) else [str(v) for v in value]
    for ref in exposure.get("metrics") or []:
        names += [ref[-1]] if isinstance(ref, list) and ref else []
    return list(dict.fromkeys(names))


def _exposures(ctx: Context) -> None:
    if not ctx.enabled(EXPOSURE_METRIC):
        return
    known = {m["name"] for m in ctx.semantic.get("metrics", [])}
    for exposure in ctx.dbt_manifest.get("exposures", {}).values():
        for name in exposure_metrics(exposure):
            ctx.report.count(EXPOSURE_METRIC.id)
            if name in known:
                continue
            suffix, best = suggestion_suffix(name, known)
            ctx.add(EXPOSURE_METRIC,
                    f"exposure '{exposure['name']}' names metric '{name}', which does not "
                    f"exist.{suffix}",
                    kind="exposure", element=exposure["name"],
                    location=ctx.locator.value_line("exposure", exposure["name"], name),
                    hint=f"replace it with '{best}'" if best else None)  # fmt: skip


def _owners(ctx: Context) -> None:
    if not ctx.enabled(METRIC_OWNER):
        return
    for m in ctx.semantic.get("metrics", []):
        ctx.report.count(METRIC_OWNER.id)
        owner = ctx.metric_meta(m["name"]).get("owner")
        if not owner or (isinstance(owner, str) and not owner.strip()):
            ctx.add(METRIC_OWNER, f"metric '{m['name']}' has no owner in its meta",
                    kind="metric", element=m["name"], field="meta")  # fmt: skip
