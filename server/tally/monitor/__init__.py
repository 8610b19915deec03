"""Monitors declared in YAML beside the metrics (freshness, row-count anomaly, metric anomaly),
their checks, and their state (alert / recovered once per change)."""

from tally.monitor.config import Monitor, load_monitors
from tally.monitor.runner import MonitorResult, run_monitors
from tally.monitor.state import MonitorState

__all__ = ["Monitor", "MonitorResult", "MonitorState", "load_monitors", "run_monitors"]
