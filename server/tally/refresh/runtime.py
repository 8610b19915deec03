"""Everything the refresh pipeline needs in one long-lived object, for the server (and, for
one run, the CLI): the notifier (tally.yml), the query history, the monitors and their
schedule (TALLY_MONITOR_INTERVAL), and one refresh at a time."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tally.build import plan, run_build, summary
from tally.errors import CallerError
from tally.history import HISTORY_FILE, QueryHistory
from tally.monitor.runner import MonitorRunner
from tally.notify import Notifier, load_notify_config
from tally.refresh.pipeline import RefreshPipeline, RefreshReport, Say
from tally.refresh.warming import DashboardsSource, HistorySource, SavedQueriesSource, WarmSource

log = logging.getLogger("tally.refresh")


class RefreshRunning(CallerError):
    status = 409
    code = "refresh_running"


def build_step(service: Any, dbt_args: Sequence[str] = (), vars_arg: str | None = None,
               start_from: Path | None = None):  # fmt: skip
    """The pipeline's build stage: `tally build`'s safe build, parse and swap in."""

    def build(say: Say) -> str:
        project_dir = service.settings.resolved_project_dir()
        output = service.profile_output()
        engine = service.engine
        data_file = engine.data_file(output, project_dir) if engine.data_file else None
        # The engine too: `tally build` builds the rollups after dbt (tally.rollups).
        the_plan = replace(plan(service.settings, data_file), engine=service.engine)
        run_build(the_plan, dbt_args, vars_arg, start_from, say=say)
        return summary(the_plan)

    return build


class RefreshRuntime:
    def __init__(self, service: Any, history: bool = True,
                 dashboards: DashboardsSource | None = None) -> None:  # fmt: skip
        self.service = service
        settings = service.settings
        project_dir = settings.resolved_project_dir()
        registry = service.telemetry.registry
        self.notifier = service.telemetry.part(
            "notify", lambda _: Notifier(load_notify_config(project_dir), settings, registry)
        )
        self.history: QueryHistory | None = None
        if history:
            try:
                self.history = QueryHistory(project_dir / HISTORY_FILE,
                                            settings.history_max_shapes)  # fmt: skip
                service.telemetry.observers.append(self.history.observe)
            except (OSError, sqlite3.Error) as e:  # a read-only project folder: serve anyway
                log.warning("no query history (%s): %s", project_dir / HISTORY_FILE, e)
        self.monitors = MonitorRunner(service, self.notifier)
        service.telemetry.part("monitors", lambda reg: reg.register(self.monitors) or True)
        self.sources: list[WarmSource] = [
            SavedQueriesSource(),
            dashboards or DashboardsSource(),
            HistorySource(self.history, settings.warm_history_shapes),
        ]
        self.last_report: RefreshReport | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def pipeline(self, say: Say | None = None) -> RefreshPipeline:
        return RefreshPipeline(self.service, self.notifier, self.sources, self.monitors, say)

    def refresh(self, build: bool = True, dbt_args: Sequence[str] = (),
                vars_arg: str | None = None, say: Say | None = None) -> RefreshReport:  # fmt: skip
        if not self._refresh_lock.acquire(blocking=False):
            raise RefreshRunning("A refresh is already running; try again when it is done.")
        try:
            step = build_step(self.service, dbt_args, vars_arg) if build else None
            self.last_report = self.pipeline(say).run(step)
            return self.last_report
        finally:
            self._refresh_lock.release()

    # The server's background work --------------------------------------------------------
    def start(self, warm_at_start: bool = True) -> None:
        """Warm once at start-up (a freshly started server answers its dashboards from cache),
        then run the monitors every TALLY_MONITOR_INTERVAL seconds (0: only on refreshes)."""
        interval = self.service.settings.monitor_interval

        def loop() -> None:
            if warm_at_start:
                try:
                    self.refresh(build=False)
                except Exception as e:  # the server serves anyway; say why it is cold
                    log.warning("warming at start-up failed: %s", e)
            while interval > 0 and not self._stop.wait(interval):
                try:
                    self.monitors.run()
                except Exception as e:
                    log.warning("scheduled monitor run failed: %s", e)

        thread = threading.Thread(target=loop, name="tally-refresh", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.notifier.flush(5)
        if self.history is not None:
            self.history.close()
