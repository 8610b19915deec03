"""Every warehouse engine tally can execute on, keyed by the dbt adapter type of a profile
output. Adding an engine is one module declaring `ENGINE = EngineSpec(...)` (how it connects
from a dbt profile, its dialect, MetricFlow's engine and renderer, its reserved words and which
of its errors are the caller's) and one line below.

An adapter type without an engine module of its own runs through its installed dbt adapter
(tally.warehouse.dbt_adapter: Snowflake, BigQuery, Databricks, Spark, Trino, Redshift, ...).
`TALLY_EXECUTION_PATH=dbt-adapter` forces that path for any engine (to compare, or when a
native driver misbehaves); each spec's `execution_path` says which path it takes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tally.core.engine import EngineSpec, Warehouse
from tally.errors import ConfigurationError
from tally.warehouse import dbt_adapter, duckdb, postgres, spark

ENGINES: dict[str, EngineSpec] = {}


def register(spec: EngineSpec) -> EngineSpec:
    ENGINES[spec.adapter_type] = spec
    return spec


register(duckdb.ENGINE)
register(postgres.ENGINE)
register(spark.ENGINE)


def engine_for(adapter_type: str | None, path: str = "auto") -> EngineSpec:
    """The engine of a dbt adapter type: its own module's, else (or with path="dbt-adapter")
    execution through the dbt adapter."""
    spec = ENGINES.get(str(adapter_type))
    if path == "dbt-adapter" or (spec is None and adapter_type in dbt_adapter.DIALECTS):
        return dbt_adapter.engine(str(adapter_type))
    if spec is None:
        raise ConfigurationError(
            f"tally has no warehouse engine for dbt adapter type {adapter_type!r} (engines: "
            f"{', '.join(sorted(ENGINES))}). README, 'Adding a warehouse engine', says how to "
            "add one."
        )
    return spec


def connect(
    output: Mapping[str, Any], project_dir: Path, path: str = "auto"
) -> tuple[EngineSpec, Warehouse]:
    """The engine of a rendered profile output and a warehouse connected through it."""
    spec = engine_for(output.get("type"), path)
    return spec, spec.connect(output, project_dir)


def engine_of(warehouse: Warehouse) -> EngineSpec:
    """The spec of a warehouse built directly (tests, embedding): by its dialect."""
    spec = getattr(warehouse, "engine", None)
    if isinstance(spec, EngineSpec):
        return spec
    for candidate in ENGINES.values():
        if candidate.dialect == warehouse.dialect:
            return candidate
    raise ConfigurationError(f"No engine registered for dialect {warehouse.dialect!r}.")


def execution_paths() -> list[dict[str, str]]:
    """Which path each known adapter type executes through (for docs and `tally` users)."""
    rows = [{"adapter": t, "path": s.execution_path} for t, s in sorted(ENGINES.items())]
    rows += [{"adapter": t, "path": "dbt-adapter"} for t in sorted(dbt_adapter.DIALECTS)
             if t not in ENGINES]  # fmt: skip
    return rows
