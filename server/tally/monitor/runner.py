"""Running the monitors: every check, each failure its own `error` result (one broken monitor
never hides the others), then state changes announced once through the notifier."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.errors import ConfigurationError, TallyError
from tally.monitor.checks import ALERT, CHECKS, ERROR, Context, MonitorResult
from tally.monitor.config import Monitor, load_monitors
from tally.monitor.relations import Relations
from tally.monitor.state import STATE_FILE, MonitorState
from tally.notify import Event, Notifier
from tally.project import read_project, read_var

log = logging.getLogger("tally.monitor")
STATUS_VALUE = {"ok": 0, "warn": 1, "alert": 2, "error": 3}


def reference_day(
    project_dir: Path, as_of: dt.date | None = None, profiles_dir: Path | None = None,
    target: str | None = None,
) -> tuple[dt.date, dt.datetime]:  # fmt: skip
    """(the latest complete day, the reference time). With the project's `as_of_date` var (or
    an explicit one) the data is complete through that day and "now" is its end, so the same
    data always gives the same verdicts; without, yesterday and the wall clock. The var is
    read as dbt's models read it, without macros (tally.project.read_var)."""
    if as_of is None:
        project = read_project(project_dir, profiles_dir, target)
        value = read_var(project, "as_of_date",
                         instead="with TALLY_AS_OF_DATE or `tally monitor --as-of`")
        if value:
            as_of = _as_date(project_dir, value)
    if as_of is not None:
        return as_of, dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.date() - dt.timedelta(days=1), now


def _as_date(project_dir: Path, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ConfigurationError(
            f"{project_dir / 'dbt_project.yml'}: vars.as_of_date is {value!r}, not a date "
            "(YYYY-MM-DD): monitors count from it (or from TALLY_AS_OF_DATE, "
            "`tally monitor --as-of`)."
        ) from None


def run_monitors(
    service: Any, monitors: Sequence[Monitor], as_of: dt.date | None = None
) -> list[MonitorResult]:
    if not monitors:
        return []
    project_dir = service.settings.resolved_project_dir()
    settings = service.settings
    day, now = reference_day(project_dir, as_of or settings.as_of_date, settings.profiles_dir,
                             settings.target)
    # dbt's manifest.json beside the semantic manifest tally serves (both from one dbt parse).
    relations = Relations(service.settings.resolved_manifest_path().parent / "manifest.json")
    ctx = Context(service, relations, now, day)
    results: list[MonitorResult] = []
    for m in monitors:
        started = time.perf_counter()
        try:
            results += CHECKS[m.type](m, ctx)
        except TallyError as e:
            results.append(MonitorResult(m.name, m.type, ERROR, e.message))
        except Exception as e:  # a warehouse error, a missing column...: this monitor only
            log.warning("monitor %s failed: %s", m.name, e)
            results.append(MonitorResult(m.name, m.type, ERROR, f"{type(e).__name__}: {e}"))
        log.info("monitor %s: %.0f ms", m.name, (time.perf_counter() - started) * 1000)
    return results


class MonitorRunner:
    """The monitors of one project, their state and their announcements (server and CLI)."""

    def __init__(self, service: Any, notifier: Notifier | None = None,
                 state: MonitorState | None = None) -> None:  # fmt: skip
        self.service = service
        self.notifier = notifier
        project_dir = service.settings.resolved_project_dir()
        self.state = state or MonitorState(project_dir / STATE_FILE)
        self.results: list[MonitorResult] = []
        self.last_run: str | None = None
        self._lock = threading.Lock()

    def monitors(self) -> tuple[Monitor, ...]:
        settings = self.service.settings
        return load_monitors(settings.resolved_project_dir(), settings.profiles_dir,
                             settings.target)

    def run(self) -> list[MonitorResult]:
        with self._lock:  # the schedule and a refresh never run the checks twice at once
            results = run_monitors(self.service, self.monitors())
            self.results = results
            self.last_run = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            for name, r in self.state.update(results):
                verb = "ALERT" if name == "monitor.alert" else "recovered"
                event = Event(name, f"tally monitor {verb}: {r.key}: {r.message}",
                              {"result": r.to_dict()})  # fmt: skip
                if self.notifier is not None:
                    self.notifier.notify(event)
            return results

    def collect(self):
        """Prometheus gauges: each check's status (0 ok, 1 warn, 2 alert, 3 error)."""
        from prometheus_client.core import GaugeMetricFamily

        status = GaugeMetricFamily("tally_monitor_status",
                                   "Monitor status: 0 ok, 1 warn, 2 alert, 3 error.",
                                   labels=["monitor", "group"])  # fmt: skip
        alerting = GaugeMetricFamily("tally_monitors_alerting", "Checks alerting now.")
        for r in self.results:
            status.add_metric([r.monitor, r.group or ""], STATUS_VALUE[r.status])
        alerting.add_metric([], sum(r.status == ALERT for r in self.results))
        yield status
        yield alerting
