"""tally: a self-hosted semantic layer and metrics API server.

The public API is small: build a `TallyService` over a dbt project and ask it questions.

    import tally

    service = tally.TallyService(tally.Settings(project_dir="path/to/dbt_project"))
    result = service.query(tally.QueryRequest.create(
        metrics=["revenue"], group_by=["metric_time__month"],
        where=[{"dimension": "customer__country", "op": "in", "values": ["US", "DE"]}],
    ), tally.Caller.local("python"))
    result.table            # a pyarrow.Table
    result.cache.outcome    # "hit", "miss" or "shared"

Names: `TallyService`, `Settings`, `QueryRequest`, `StructuredFilter`, `QueryResult`,
`Caller`, the catalog types (`MetricInfo`, `DimensionInfo`, `EntityInfo`, `SavedQueryInfo`) and
the errors (`TallyError`, `CallerError`, `ServerFault` and their subclasses in `tally.errors`).
They load on first use, so `import tally` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TallyService": "tally.service",
    "Settings": "tally.settings",
    "QueryRequest": "tally.core.request",
    "StructuredFilter": "tally.core.filters",
    "QueryResult": "tally.core.results",
    "CacheStatus": "tally.core.results",
    "Timing": "tally.core.results",
    "Caller": "tally.core.caller",
    "MetricInfo": "tally.core.catalog",
    "DimensionInfo": "tally.core.catalog",
    "EntityInfo": "tally.core.catalog",
    "SavedQueryInfo": "tally.core.catalog",
    "TallyError": "tally.errors",
    "CallerError": "tally.errors",
    "ServerFault": "tally.errors",
}

__all__ = [*_EXPORTS, "__version__"]

def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tally' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
