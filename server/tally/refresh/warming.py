"""Warming: the questions to answer before anyone asks, from pluggable sources, each a name
and a function from the service to requests:

* saved queries marked for warming (`config: meta: {warm: true}` in their YAML);
* the most frequent unrestricted query shapes of the last 24 hours (the query history);
* every tile of every dashboard of the project (`semantic/dashboards/*.yml`), under its default
  controls, as the dashboard page asks for it (KPIs with their previous period).

Warmed queries run as an unrestricted caller, so they are cache hits for every caller whose
access context is empty (anonymous on an open server, keys and tokens without row policies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tally.core.caller import Caller
from tally.core.dashboards import dashboard_requests
from tally.core.request import QueryRequest
from tally.errors import TallyError
from tally.history import QueryHistory, request_of

log = logging.getLogger("tally.refresh")
WARM_CALLER = Caller.local("warm")


class WarmSource(Protocol):
    name: str

    def requests(self, service: Any) -> list[QueryRequest]: ...


@dataclass
class SavedQueriesSource:
    name: str = "saved_queries"

    def requests(self, service: Any) -> list[QueryRequest]:
        meta = service.compiler.loaded.saved_query_meta
        out = []
        for info in service.list_saved_queries(WARM_CALLER):
            m = meta.get(info.name, {})
            tally_meta = m.get("tally") if isinstance(m.get("tally"), dict) else {}
            if m.get("warm") is True or tally_meta.get("warm") is True:
                out.append(QueryRequest.create(saved_query=info.name))
        return out


@dataclass
class HistorySource:
    history: QueryHistory | None
    limit: int = 20
    hours: float = 24.0
    name: str = "query_history"

    def requests(self, service: Any) -> list[QueryRequest]:
        if self.history is None or self.limit <= 0:
            return []
        out = []
        for shape in self.history.shapes("frequent", self.limit, self.hours,
                                         unrestricted_only=True):  # fmt: skip
            try:
                out.append(request_of(shape.request))
            except TallyError:  # a shape that no longer parses: skip it
                continue
        return out


@dataclass
class DashboardsSource:
    """Every tile of every dashboard: `tiles(service)` returns their requests (by default, the
    project's dashboards under their default controls)."""

    tiles: Callable[[Any], list[QueryRequest]] = field(default=lambda service: _tiles(service))
    name: str = "dashboards"

    def requests(self, service: Any) -> list[QueryRequest]:
        return list(self.tiles(service))


def _tiles(service: Any) -> list[QueryRequest]:
    project_dir = service.settings.resolved_project_dir()
    return [request for _, _, request in dashboard_requests(project_dir)]


@dataclass
class WarmReport:
    warmed: int = 0
    failed: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"warmed": self.warmed, "failed": self.failed, "by_source": self.by_source,
                "errors": self.errors[:20], "seconds": round(self.seconds, 3)}  # fmt: skip


def warm(service: Any, sources: Sequence[WarmSource], say: Callable[[str], None]) -> WarmReport:
    """Answer each distinct request once (a shape in two sources runs once)."""
    started = time.perf_counter()
    report = WarmReport()
    seen: set[QueryRequest] = set()
    for source in sources:
        try:
            requests = source.requests(service)
        except Exception as e:  # one broken source must not stop the others
            report.errors.append(f"{source.name}: {e}")
            say(f"  warm: source {source.name} failed: {e}")
            continue
        fresh = [r for r in requests if r not in seen]
        seen.update(fresh)
        report.by_source[source.name] = 0
        for i, request in enumerate(fresh, 1):
            try:
                service.query(request, WARM_CALLER)
            except TallyError as e:
                report.failed += 1
                report.errors.append(f"{source.name}: {e.message}")
                continue
            report.warmed += 1
            report.by_source[source.name] += 1
            if i % 10 == 0 or i == len(fresh):
                say(f"  warm: {source.name}: {i}/{len(fresh)}")
    report.seconds = time.perf_counter() - started
    return report
