"""The refresh pipeline, stage by stage, each logged with its duration:

  build      dbt build + dbt parse beside what is served, then swap in (tally.build); a failed
             build or failed dbt tests change nothing served and send `build.failed` with
             dbt's own summary, and the pipeline stops there
  invalidate forget every cached answer (the data version moves on)
  warm       answer the warming sources' questions (tally.refresh.warming) -> `cache.warmed`
  monitor    run the monitors -> `monitor.alert` / `monitor.recovered` on changes of state

`build.succeeded` goes out as soon as the new data is served. Notifications are queued, never
awaited: a webhook that is down never slows or fails a refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tally.build import BuildFailed
from tally.errors import TallyError
from tally.monitor.checks import ALERT
from tally.monitor.runner import MonitorRunner
from tally.notify import Event, Notifier
from tally.refresh.warming import WarmSource, warm

log = logging.getLogger("tally.refresh")
Say = Callable[[str], None]


@dataclass
class StageReport:
    name: str
    status: str  # ok, failed, skipped
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail}  # fmt: skip


@dataclass
class RefreshReport:
    ok: bool = True
    stages: list[StageReport] = field(default_factory=list)
    warm: dict[str, Any] = field(default_factory=dict)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "stages": [s.to_dict() for s in self.stages],
                "warm": self.warm, "monitors": self.monitors, "error": self.error}  # fmt: skip


class RefreshPipeline:
    def __init__(
        self,
        service: Any,
        notifier: Notifier,
        sources: Sequence[WarmSource],
        monitors: MonitorRunner | None,
        say: Say | None = None,
    ) -> None:
        self.service = service
        self.notifier = notifier
        self.sources = sources
        self.monitors = monitors
        self.say = say or (lambda line: log.info("%s", line))

    def run(self, build: Callable[[Say], str] | None) -> RefreshReport:
        """`build(say)` builds and swaps in, returning a summary (None: the data is already
        in place, e.g. `tally build` asking a running server to refresh)."""
        report = RefreshReport()
        if build is not None:
            try:
                summary = self._stage(report, "build", lambda: build(self.say))
            except BuildFailed as e:
                report.ok, report.error = False, e.message
                self.notifier.notify(Event("build.failed", f"tally build failed: {e.message}",
                                           {"summary": e.message}))  # fmt: skip
                return report
            self.say(summary)
            self.notifier.notify(Event("build.succeeded", f"tally build succeeded: {summary}",
                                       {"summary": summary}))  # fmt: skip
        else:
            report.stages.append(StageReport("build", "skipped", detail="already swapped in"))
        version = self._stage(report, "invalidate", self.service.invalidate_cache)
        report.stages[-1].detail = f"data version {version}"
        if not self.sources:  # e.g. `tally build` with no server to warm
            report.stages.append(StageReport("warm", "skipped", detail="no warming sources"))
            return self._monitor(report)
        try:
            warmed = self._stage(report, "warm", lambda: warm(self.service, self.sources,
                                                              self.say))  # fmt: skip
        except TallyError as e:  # e.g. the manifest cannot be loaded: report, do not stop
            report.ok, report.error = False, e.message
            return report
        report.warm = warmed.to_dict()
        report.stages[-1].detail = f"{warmed.warmed} queries warmed, {warmed.failed} failed"
        self.notifier.notify(Event(
            "cache.warmed",
            f"tally cache warmed: {warmed.warmed} queries in {warmed.seconds:.1f} s "
            f"({', '.join(f'{k} {v}' for k, v in warmed.by_source.items()) or 'no sources'})",
            warmed.to_dict(),
        ))  # fmt: skip
        return self._monitor(report)

    def _monitor(self, report: RefreshReport) -> RefreshReport:
        if self.monitors is not None:
            results = self._stage(report, "monitor", self.monitors.run)
            alerting = [r.key for r in results if r.status == ALERT]
            report.monitors = [r.to_dict() for r in results]
            report.stages[-1].detail = (f"{len(results)} checks, {len(alerting)} alerting"
                                        + (f": {', '.join(alerting)}" if alerting else ""))
        else:
            report.stages.append(StageReport("monitor", "skipped"))
        return report

    def _stage(self, report: RefreshReport, name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        self.say(f"refresh: {name}...")
        stage = StageReport(name, "ok")
        report.stages.append(stage)
        try:
            return fn()
        except Exception as e:
            stage.status = "failed"
            stage.detail = getattr(e, "message", str(e))
            raise
        finally:
            stage.seconds = time.perf_counter() - started
            self.say(f"refresh: {name} {stage.status} in {stage.seconds:.1f} s"
                     + (f" ({stage.detail})" if stage.detail and stage.status != "ok" else ""))
            log.info("refresh stage %s %s in %.3f s", name, stage.status, stage.seconds)
