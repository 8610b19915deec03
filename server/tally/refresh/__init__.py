"""After every build: swap the new data and manifest in, invalidate, warm the cache, run the
monitors, notify. The same pipeline runs in `tally build` and in the server's
POST /api/v1/refresh."""

from tally.refresh.pipeline import RefreshPipeline, RefreshReport, StageReport
from tally.refresh.warming import (
    DashboardsSource,
    HistorySource,
    SavedQueriesSource,
    WarmSource,
    warm,
)

__all__ = [
    "DashboardsSource",
    "HistorySource",
    "RefreshPipeline",
    "RefreshReport",
    "SavedQueriesSource",
    "StageReport",
    "WarmSource",
    "warm",
]
