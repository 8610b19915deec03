"""The three checks. Each takes a monitor and a `Context` (the service, dbt's relations, the
reference time) and returns its results: one per monitor, or one per group of a metric
monitor `by` a dimension. Warehouse SQL here is plain and portable (max, count, a date cast);
metric values come through the service like any other query, so they are the served numbers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.monitor.config import Monitor
from tally.monitor.relations import Relations
from tally.monitor.stats import median, percent_change, robust_z

OK, WARN, ALERT, ERROR = "ok", "warn", "alert", "error"
CALLER = Caller.local("monitor")


@dataclass(frozen=True)
class MonitorResult:
    monitor: str
    type: str
    status: str  # ok, warn, alert, error
    message: str
    group: str | None = None  # the dimension value of a metric monitor `by` a dimension
    value: float | None = None
    expected: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.monitor if self.group is None else f"{self.monitor}[{self.group}]"

    def to_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "type": self.type, "group": self.group,
                "status": self.status, "message": self.message, "value": self.value,
                "expected": self.expected, "details": self.details}  # fmt: skip


@dataclass(frozen=True)
class Context:
    service: Any  # TallyService (typed loosely: this layer sits above the service)
    relations: Relations
    now: dt.datetime  # the reference time: the end of as_of_date when the project sets it
    as_of: dt.date  # the latest complete day

    def sql(self, text: str) -> list[tuple]:
        table = self.service.warehouse.execute(text)
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns, strict=True)) if columns else []


def freshness(m: Monitor, ctx: Context) -> list[MonitorResult]:
    relation = ctx.relations.of(m)
    column = m.column or relation.loaded_at_field
    if not column:
        return [MonitorResult(m.name, m.type, ERROR, f"{m.where}: no column, and the source "
                              "has no loaded_at_field in dbt")]  # fmt: skip
    warn = m.warn_after_hours if m.warn_after_hours is not None else relation.warn_after_hours
    error = m.error_after_hours if m.error_after_hours is not None else relation.error_after_hours
    if warn is None and error is None:
        return [MonitorResult(m.name, m.type, ERROR, f"{m.where}: no warn_after or error_after, "
                              "and none in dbt's source freshness")]  # fmt: skip
    newest = ctx.sql(f"SELECT max({column}) FROM {relation.name}")[0][0]
    table = m.model or m.source
    if newest is None:
        return [MonitorResult(m.name, m.type, ALERT, f"{table} is empty")]
    if isinstance(newest, dt.date) and not isinstance(newest, dt.datetime):
        newest = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time())
    age_h = (ctx.now - newest.replace(tzinfo=None)).total_seconds() / 3600
    status = OK
    if error is not None and age_h > error:
        status = ALERT
    elif warn is not None and age_h > warn:
        status = ALERT if error is None else WARN
    limit = error if status != WARN and error is not None else warn
    message = f"{table}.{column}: newest {newest:%Y-%m-%d %H:%M}, {age_h:.1f} h old"
    if status != OK:
        message += f" (more than {limit:g} h)"
    return [MonitorResult(m.name, m.type, status, message, value=round(age_h, 2),
                          expected=limit, details={"newest": newest.isoformat()})]  # fmt: skip


def row_count(m: Monitor, ctx: Context) -> list[MonitorResult]:
    relation = ctx.relations.of(m)
    # lag_days: a source whose newest day is still settling (late rows) is judged on an
    # earlier one.
    day = ctx.as_of - dt.timedelta(days=m.lag_days)
    first = day - dt.timedelta(days=m.lookback_days)
    rows = ctx.sql(
        f"SELECT CAST({m.date_column} AS DATE) AS d, count(*) AS n FROM {relation.name} "
        f"WHERE {m.date_column} >= DATE '{first}' "
        f"AND {m.date_column} < DATE '{day + dt.timedelta(days=1)}' GROUP BY 1"
    )
    per_day = {d: n for d, n in rows}
    baseline = [per_day.get(first + dt.timedelta(days=i), 0) for i in range(m.lookback_days)]
    latest = per_day.get(day, 0)
    expected = median(baseline)
    change = percent_change(latest, expected)
    table = m.model or m.source
    status = ALERT if change is not None and abs(change) > m.threshold_percent else OK
    shown = "n/a" if change is None else f"{change:+.0f}%"
    message = (f"{table}: {latest:,} rows on {day}, {shown} against the median "
               f"{expected:,.0f} of the {m.lookback_days} days before")  # fmt: skip
    if status == ALERT:
        message += f" (threshold {m.threshold_percent:g}%)"
    return [MonitorResult(m.name, m.type, status, message, value=float(latest),
                          expected=expected, details={"change_percent": change})]  # fmt: skip


def metric(m: Monitor, ctx: Context) -> list[MonitorResult]:
    assert m.metric is not None
    periods = _complete_periods(ctx.as_of, m.grain, m.lookback + 1)
    time_dim = f"metric_time__{m.grain}"
    group_by = [time_dim] + ([m.by] if m.by else [])
    request = QueryRequest.create(
        metrics=[m.metric], group_by=group_by, start=periods[0].isoformat(),
        end=(_period_end(periods[-1], m.grain) - dt.timedelta(days=1)).isoformat(),
    )  # fmt: skip
    result = ctx.service.query(request, CALLER)
    table = result.table
    names = table.column_names
    by_col = names[group_by.index(m.by)] if m.by else None
    series: dict[str | None, dict[dt.date, float]] = {}
    for row in table.to_pylist():
        when = row[names[0]]
        when = when.date() if isinstance(when, dt.datetime) else when
        group = None if by_col is None else str(row[by_col])
        value = row[m.metric]
        series.setdefault(group, {})[when] = float(value) if value is not None else 0.0
    out: list[MonitorResult] = []
    for group in sorted(series, key=lambda g: (g is None, str(g))):
        values = [series[group].get(p, 0.0) for p in periods]
        baseline, latest = values[:-1], values[-1]
        expected = median(baseline)
        label = f"{m.metric}" + (f" for {m.by} = {group}" if group is not None else "")
        where = f"{label}, {m.grain} of {periods[-1]}"
        if expected < m.min_volume:
            out.append(MonitorResult(m.name, m.type, OK, f"{where}: below min_volume "
                                     f"{m.min_volume:g} (median {expected:g}), not checked",
                                     group, latest, expected, {"skipped": True}))  # fmt: skip
            continue
        z = robust_z(latest, baseline)
        change = percent_change(latest, expected)
        alert = abs(z) >= m.threshold and (change is None or abs(change) >= m.min_change_percent)
        shown = "n/a" if change is None else f"{change:+.0f}%"
        message = (f"{where}: {latest:,.2f} against the median {expected:,.2f} of the "
                   f"{len(baseline)} {m.grain}s before ({shown}, robust z {z:+.1f})")  # fmt: skip
        out.append(MonitorResult(m.name, m.type, ALERT if alert else OK, message, group, latest,
                                 expected, {"z": round(z, 2), "change_percent": change,
                                            "period": periods[-1].isoformat()}))  # fmt: skip
    return out


def _period_start(day: dt.date, grain: str) -> dt.date:
    if grain == "day":
        return day
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _period_end(start: dt.date, grain: str) -> dt.date:
    """The first day after the period starting at `start`."""
    if grain == "day":
        return start + dt.timedelta(days=1)
    if grain == "week":
        return start + dt.timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    month = start.month - 1 + months
    return start.replace(year=start.year + month // 12, month=month % 12 + 1, day=1)


def _complete_periods(as_of: dt.date, grain: str, n: int) -> list[dt.date]:
    """The starts of the last `n` periods that end on or before as_of (oldest first)."""
    start = _period_start(as_of, grain)
    if _period_end(start, grain) > as_of + dt.timedelta(days=1):
        start = _period_start(start - dt.timedelta(days=1), grain)
    starts = [start]
    while len(starts) < n:
        starts.append(_period_start(starts[-1] - dt.timedelta(days=1), grain))
    return starts[::-1]


CHECKS: dict[str, Callable[[Monitor, Context], list[MonitorResult]]] = {
    "freshness": freshness,
    "row_count": row_count,
    "metric": metric,
}
