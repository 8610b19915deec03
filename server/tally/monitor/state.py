"""What each monitor (and group) said last time, kept in <project>/.tally/monitors/state.json
so that a page goes out once per change of state, whether the checks run in the server on a
schedule or from cron through `tally monitor`: `monitor.alert` when a check starts alerting,
`monitor.recovered` when an alerting check is ok again, nothing while it stays the same."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from tally.monitor.checks import ALERT, OK, MonitorResult

STATE_FILE = ".tally/monitors/state.json"


class MonitorState:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        if self.path is None or not self.path.exists():
            return getattr(self, "_memory", {})
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict[str, dict]) -> None:
        if self.path is None:
            self._memory = data
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)  # atomic: a reader never sees half a file

    def update(self, results: Iterable[MonitorResult]) -> list[tuple[str, MonitorResult]]:
        """Record the results; return the changes to announce, as (event name, result)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        changes: list[tuple[str, MonitorResult]] = []
        with self._lock:
            data = self._read()
            for r in results:
                before = data.get(r.key, {}).get("status")
                if r.status == ALERT and before != ALERT:
                    changes.append(("monitor.alert", r))
                elif r.status == OK and before == ALERT:
                    changes.append(("monitor.recovered", r))
                since = data.get(r.key, {}).get("since") if before == r.status else now
                data[r.key] = {"status": r.status, "since": since, "message": r.message}
            self._write(data)
        return changes

    def current(self) -> dict[str, dict]:
        with self._lock:
            return self._read()
