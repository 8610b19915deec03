"""MetricFlow's semantic validations, one rule at a time so each finding names the rule.

They run on the manifest as dbt wrote it, before MetricFlow's load-time transformations: those
turn measures into proxy metrics and cumulative metrics into metric-on-metric, and the validator
then reports artefacts of the transformation itself (a cumulative metric "should not have both
a measure and a metric as inputs", a proxy metric's label "already used") that no one wrote and
no one can fix. That the transformed manifest loads is checked separately (`manifest_loads`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metricflow_semantic_interfaces.implementations.semantic_manifest import (
    PydanticSemanticManifest,
)
from metricflow_semantic_interfaces.validations.semantic_manifest_validator import (
    SemanticManifestValidator,
)
from metricflow_semantic_interfaces.validations.validator_helpers import (
    MetricContext,
    SavedQueryContext,
    SemanticModelContext,
    SemanticModelElementContext,
    ValidationError,
    ValidationIssueContext,
)

from tally.validate.findings import (
    Finding,
    Location,
    Report,
    Rule,
    Severity,
    Stage,
    make_finding,
    register_rule,
)
from tally.validate.locate import Locator, message_names
from tally.validate.parse import DBT_SEMANTIC

_HINTS = {
    "MetricMeasuresRule": "point the metric at a measure defined in a semantic model",
    "DerivedMetricRule": "list each input metric (existing) and use its name or alias in expr",
    "ConversionMetricRule": "use an entity and measures present in both semantic models",
    "CumulativeMetricRule": "put window or grain_to_date under cumulative_type_params",
    "UniqueAndValidNameRule": "give each element a unique snake_case name",
    "AggregationTimeDimensionRule": "set agg_time_dimension to a time dimension of the model",
    "SavedQueryRule": "reference metrics and group-bys that exist, e.g. Dimension('entity__dim')",
    "MetricLabelsRule": "give each metric a label no other metric uses",
    "SemanticModelLabelsRule": "give each semantic model a label no other model uses",
    "EntityLabelsRule": "use the same label for an entity everywhere, unique among entities",
    "WhereFiltersAreParseable": "write filters as {{ Dimension('entity__dimension') }} = ...",
    "PrimaryEntityRule": "give the semantic model a primary entity (or primary_entity:)",
    "ElementConsistencyRule": "an element shared by semantic models needs one type everywhere",
    "DimensionConsistencyRule": "a dimension shared by semantic models needs one type and grain",
    "CountAggregationExprRule": "give the count measure an expr naming the counted column",
    "TimeSpineRule": "declare a time spine model (time_spine: in its YAML) at the grain of the "
    "finest time dimension, or coarsen that dimension's time_granularity",
    "TimeDimensionHasGranularityRule": "set type_params.time_granularity on the dimension",
    "ReservedKeywordsRule": "rename the element: its name is a reserved SQL keyword",
    "NonEmptyRule": "define at least one semantic model and one metric",
}


def _rule_id(cls_name: str) -> str:
    base = cls_name.removesuffix("Rule")
    return "mf_" + re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def _register() -> dict[str, Rule]:
    out = {}
    for rule in SemanticManifestValidator.DEFAULT_RULES:
        name = type(rule).__name__
        hint = _HINTS.get(name, f"fix the definition as the message says (MetricFlow {name})")
        doc = (type(rule).__doc__ or "").strip().splitlines()
        summary = f"{doc[0].rstrip('.')} (MetricFlow {name})" if doc else f"MetricFlow {name}"
        # The severity of each finding is the one MetricFlow gives the issue (error or
        # warning), unless the project file sets one for the rule.
        out[name] = register_rule(_rule_id(name), Stage.METRICFLOW, Severity.ERROR, summary, hint)
    return out


MF_RULES = _register()
_KINDS = ("metric", "saved_query", "semantic_model", "measure", "dimension", "entity")


def load_raw_manifest(path: Path) -> PydanticSemanticManifest:
    """The semantic manifest exactly as dbt wrote it (no MetricFlow transformation)."""
    return PydanticSemanticManifest.parse_raw(path.read_text())


def run_metricflow_rules(
    manifest: PydanticSemanticManifest,
    locator: Locator,
    report: Report,
    enabled: Callable[[str], bool] = lambda rule_id: True,
    dbt_messages: Sequence[tuple[Severity, str]] = (),
) -> None:
    """Each MetricFlow rule on the manifest; then dbt's own semantic messages (from its parse)
    that no MetricFlow rule reported."""
    seen: set[str] = set()
    for validation_rule in SemanticManifestValidator.DEFAULT_RULES:
        rule = MF_RULES[type(validation_rule).__name__]
        if not enabled(rule.id):
            continue
        try:
            issues = validation_rule.validate_manifest(manifest)
        except Exception as e:  # a crashing rule is a finding, not the end of the run
            report.findings.append(make_finding(rule, f"the check could not run: {e}"))
            continue
        report.count(rule.id, 1)
        for issue in issues:
            seen.add(_norm(issue.message))
            severity = Severity.ERROR if isinstance(issue, ValidationError) else Severity.WARNING
            report.findings.append(_finding(rule, issue, severity, locator))
    # dbt validates with its own copy of the rules; report what only it found.
    for severity, message in dbt_messages:
        if _norm(message) not in seen:
            kind, element, loc = _guess(message, locator)
            report.findings.append(
                make_finding(
                    DBT_SEMANTIC,
                    message,
                    kind=kind,
                    element=element,
                    location=loc,
                    severity=severity,
                )
            )


def _norm(message: str) -> str:
    return " ".join(message.split())


def _finding(rule: Rule, issue: Any, severity: Severity, locator: Locator) -> Finding:
    message = _norm(issue.message)
    ctx = issue.context
    kind: str | None = None
    element: str | None = None
    if isinstance(ctx, MetricContext):
        kind, element = "metric", ctx.metric.metric_name
    elif isinstance(ctx, SemanticModelContext):
        kind, element = "semantic_model", ctx.semantic_model.semantic_model_name
    elif isinstance(ctx, SemanticModelElementContext):
        ref = ctx.semantic_model_element
        kind = ctx.element_type.value
        element = f"{ref.semantic_model_name}.{ref.element_name}"
    elif isinstance(ctx, ValidationIssueContext):
        kind, element = ctx.object_type.lower().replace(" ", "_"), ctx.object_name
    loc = locator.refine(kind, element, message) if kind and element else None
    if isinstance(ctx, SavedQueryContext):
        found = locator.containing("saved_query", ctx.element_value)
        if found is not None:
            kind, (element, loc) = "saved_query", found
    if loc is None:
        # SavedQueryContext names the offending value but not the saved query; other contexts
        # carry nothing. The message names the element.
        kinds = ("saved_query",) if isinstance(ctx, SavedQueryContext) else _KINDS
        guess_kind, guess_element, guess_loc = _guess(message, locator, kinds)
        if guess_loc is None and kinds != _KINDS:
            guess_kind, guess_element, guess_loc = _guess(message, locator)
        if guess_loc is not None:
            kind, element, loc = guess_kind, guess_element, guess_loc
    file_name = getattr(getattr(ctx, "file_context", None), "file_name", None)
    if loc is None and file_name:
        loc = Location(Path(file_name), getattr(ctx.file_context, "line_number", None))
    return make_finding(rule, message, kind=kind, element=element, location=loc,
                        severity=severity)


def _guess(
    message: str, locator: Locator, kinds: tuple[str, ...] = _KINDS
) -> tuple[str | None, str | None, Location | None]:
    for name in message_names(message):
        found = locator.find_any(name, kinds)
        if found:
            return found[0], name, locator.refine(found[0], name, message) or found[1]
    return None, None, None
