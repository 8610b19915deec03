"""Logging for the `tally` command and server: tally's own lines at the level asked for, its
libraries' (MetricFlow plans every query aloud at INFO: semantic graph, trie resolver,
"Explain Request"; dbt and the MCP SDK talk too) only at warnings and above, unless the level
is debug (`--log-level debug` or TALLY_LOG_LEVEL=debug), which shows everything."""

from __future__ import annotations

import logging
import os

LEVELS = ("debug", "info", "warning", "error")
# Libraries whose INFO lines are about their own work, not the operator's.
LIBRARIES = (
    "metricflow",
    "metricflow_semantics",
    "metricflow_semantic_interfaces",
    "dbt_semantic_interfaces",
    "dbt",
    "mcp",
    "sqlfluff",
)


def level_from_env(default: str = "info") -> str:
    """TALLY_LOG_LEVEL, if it names a level, else `default`."""
    value = os.environ.get("TALLY_LOG_LEVEL", "").strip().lower()
    return value if value in LEVELS else default


def configure(level: str | None = None) -> str:
    """Set up the root handler once, tally at `level` (default: TALLY_LOG_LEVEL, else info) and
    the libraries at warning unless `level` is debug. Returns the level used."""
    chosen = (level or level_from_env()).lower()
    # force: a library imported earlier (dbt's loader) may have set up the root logger first.
    logging.basicConfig(level=chosen.upper(), format="%(levelname)s %(name)s %(message)s",
                        force=True)
    logging.getLogger().setLevel(chosen.upper())
    quiet(chosen)
    return chosen


def quiet(level: str) -> None:
    """The libraries at warning, unless `level` is debug."""
    library_level = logging.DEBUG if level == "debug" else logging.WARNING
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
