"""How a metric's value can be computed from what a rollup stores.

A rollup stores, per row of its group-by, the values of some metrics. Over coarser groups
(fewer dimensions, a coarser grain) only some of them can be combined again exactly:

* a simple metric over a sum or count measure: the sum of the stored values; over min or max:
  the min or max of them. Distinct counts, averages, percentiles, semi-additive measures and
  measures joined to the time spine cannot: their value over a group is not a function of the
  values over its parts.
* a ratio: (combined numerator) / (combined denominator), as MetricFlow writes it;
* a derived metric without offsets or input filters: its expression over its inputs, combined.

Cumulative and conversion metrics, and derived metrics with an offset, can be read from a
rollup only at exactly its group-by and grain (stored as they are).

This reads MetricFlow's manifest objects by attribute (name, type, type_params); it imports
nothing of MetricFlow.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

# Measure aggregations whose values over parts combine into the value over the whole, and how.
COMBINE = {"sum": "SUM", "count": "SUM", "sum_boolean": "SUM", "min": "MIN", "max": "MAX"}


@dataclass(frozen=True)
class Formula:
    """A metric in terms of stored columns: `sql` combines groups of rollup rows (GROUP BY),
    `row_sql` reads one rollup row as is; `parts` are the stored metrics it reads."""

    sql: str
    row_sql: str
    parts: tuple[str, ...]


class NotCombinable(Exception):
    """Why a metric cannot be combined from stored parts (the message is the reason)."""


class MetricParts:
    """Decomposition of a manifest's metrics into combinable stored parts."""

    def __init__(self, manifest: Any, double: str = "DOUBLE") -> None:
        # The SQL type of a ratio's operands in the engine's dialect, as MetricFlow casts them.
        self._double = double
        self._metrics = {m.name: m for m in manifest.metrics}
        self._measures = {
            measure.name: measure
            for model in manifest.semantic_models
            for measure in model.measures
        }

    def kind(self, metric: str) -> str:
        return self._metrics[metric].type.value.lower()

    def stored_parts(self, metric: str) -> tuple[str, ...]:
        """Everything a rollup of `metric` stores: the metric itself and, when it can be
        combined, the parts it is combined from (so coarser queries can use the rollup)."""
        out = [metric]
        with contextlib.suppress(NotCombinable):
            out += [p for p in self.formula(metric).parts if p not in out]
        return tuple(out)

    def formula(self, metric: str, depth: int = 0) -> Formula:
        if depth > 20:
            raise NotCombinable(f"metric '{metric}' nests too deeply")
        m = self._metrics[metric]
        kind = m.type.value.lower()
        params = m.type_params
        col = _quote(metric)
        if kind == "simple":
            return self._simple(m, col)
        if kind == "ratio":
            num = self._input(params.numerator, depth)
            den = self._input(params.denominator, depth)
            return Formula(
                self._ratio(num.sql, den.sql), self._ratio(num.row_sql, den.row_sql),
                num.parts + den.parts,
            )
        if kind == "derived":
            subs: dict[str, Formula] = {}
            for item in params.metrics or ():
                subs[item.alias or item.name] = self._input(item, depth)
            parts = tuple(p for f in subs.values() for p in f.parts)
            return Formula(
                _substitute(params.expr, {k: f.sql for k, f in subs.items()}),
                _substitute(params.expr, {k: f.row_sql for k, f in subs.items()}),
                parts,
            )
        raise NotCombinable(f"metric '{metric}' is {kind}: its value over a group is not "
                            "combined from the values over its parts")

    def _ratio(self, num: str, den: str) -> str:
        # MetricFlow's ratio: CAST(num AS DOUBLE) / CAST(NULLIF(den, 0) AS DOUBLE).
        return f"CAST({num} AS {self._double}) / CAST(NULLIF({den}, 0) AS {self._double})"

    def _input(self, item: Any, depth: int) -> Formula:
        if item.filter is not None:
            raise NotCombinable(f"input '{item.name}' has a filter of its own")
        if getattr(item, "offset_window", None) or getattr(item, "offset_to_grain", None):
            raise NotCombinable(f"input '{item.name}' is offset in time")
        return self.formula(item.name, depth + 1)

    def _simple(self, m: Any, col: str) -> Formula:
        params = m.type_params
        measure_input = params.measure
        if measure_input is None:  # newer manifests: the aggregation on the metric itself
            agg_params = params.metric_aggregation_params
            agg = agg_params.agg.value.lower() if agg_params else ""
            spine = bool(params.join_to_timespine)
            fill = params.fill_nulls_with
            non_additive = agg_params is not None and agg_params.non_additive_dimension
        else:
            measure = self._measures.get(measure_input.name)
            if measure is None:
                raise NotCombinable(f"metric '{m.name}' has no measure in the manifest")
            agg = measure.agg.value.lower()
            spine = bool(measure_input.join_to_timespine)
            fill = measure_input.fill_nulls_with
            non_additive = measure.non_additive_dimension
        if non_additive:
            raise NotCombinable(f"metric '{m.name}' is semi-additive (non_additive_dimension)")
        if spine:
            raise NotCombinable(f"metric '{m.name}' is joined to the time spine")
        combine = COMBINE.get(agg)
        if combine is None:
            raise NotCombinable(f"metric '{m.name}' aggregates with {agg}, which is not additive")
        sql = f"{combine}({col})"
        if fill is not None:  # MetricFlow writes COALESCE(value, fill) on the metric
            sql = f"COALESCE({sql}, {fill!r})"
        return Formula(sql, col, (m.name,))


def _substitute(expr: str, subs: dict[str, str]) -> str:
    if not subs:
        return expr
    names = sorted(subs, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\"])(" + "|".join(map(re.escape, names)) + r")(?![\w\"])")
    return pattern.sub(lambda mt: f"({subs[mt.group(1)]})", expr)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
