"""Every warehouse engine tally can execute on, keyed by the dbt adapter type of a profile
output. Adding an engine is one module declaring `ENGINE = EngineSpec(...)` (how it connects
from a dbt profile, its dialect, MetricFlow's engine and renderer, its reserved words, which
of its errors are the caller's, and optionally its rollup writer and spellings, its dbt
Semantic Layer name and its demo data target), usually with a `BaseWarehouse` subclass
(tally.warehouse.base), and one line below.

An adapter type without an engine module of its own runs through its installed dbt adapter
(tally.warehouse.dbt_adapter: Snowflake, BigQuery, Databricks, Spark, Trino, Redshift, ...).
`TALLY_EXECUTION_PATH` chooses among an engine's paths: "auto" (default) its ADBC engine when
tally has one and the driver is installed (PostgreSQL), else its own module, else its dbt
adapter; "native" its own module (psycopg2 for PostgreSQL); "adbc" its ADBC engine;
"dbt-adapter" its dbt adapter (to compare, or when a driver misbehaves). Each spec's
`execution_path` says which path it takes; `execution_paths()` lists them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tally.core.engine import EngineSpec, Warehouse
from tally.errors import ConfigurationError
from tally.warehouse import dbt_adapter, duckdb, postgres, postgres_adbc, spark

ENGINES: dict[str, EngineSpec] = {}


def register(spec: EngineSpec) -> EngineSpec:
    ENGINES[spec.adapter_type] = spec
    return spec


register(duckdb.ENGINE)
register(postgres.ENGINE)
register(spark.ENGINE)

# Engines reached through an ADBC driver, each with the check that its driver is installed.
# "auto" prefers them: docs/warehouses.md, "PostgreSQL over ADBC", gives the measurements.
ADBC_ENGINES: dict[str, tuple[EngineSpec, Callable[[], bool]]] = {
    "postgres": (postgres_adbc.ENGINE, postgres_adbc.installed),
}
PATHS = ("auto", "native", "adbc", "dbt-adapter")


def engine_for(adapter_type: str | None, path: str = "auto") -> EngineSpec:
    """The engine of a dbt adapter type on an execution path (PATHS; the module docstring)."""
    if path not in PATHS:
        raise ConfigurationError(
            f"Unknown execution path {path!r} (TALLY_EXECUTION_PATH: {', '.join(PATHS)})."
        )
    adapter = str(adapter_type)
    spec = ENGINES.get(adapter)
    adbc = ADBC_ENGINES.get(adapter)
    if path == "adbc":
        if adbc is None:
            raise ConfigurationError(
                f"TALLY_EXECUTION_PATH=adbc: tally has no ADBC path for dbt adapter type "
                f"{adapter_type!r} (ADBC paths: {', '.join(sorted(ADBC_ENGINES))}); use auto."
            )
        return adbc[0]  # a missing driver is reported when it connects, naming the package
    if path == "auto" and adbc is not None and adbc[1]():
        return adbc[0]
    if path == "native" and spec is None:
        raise ConfigurationError(
            f"TALLY_EXECUTION_PATH=native: tally has no engine module for dbt adapter type "
            f"{adapter_type!r} (native: {', '.join(sorted(ENGINES))}); use auto."
        )
    if path == "dbt-adapter" or (spec is None and adapter in dbt_adapter.DIALECTS):
        return dbt_adapter.engine(adapter, native=spec)
    if spec is None:
        raise ConfigurationError(
            f"tally has no warehouse engine for dbt adapter type {adapter_type!r} (engines: "
            f"{', '.join(sorted(ENGINES))}). docs/warehouses.md, 'Adding a warehouse "
            "engine', says how to add one."
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
    """For each known adapter type, the path "auto" takes here ("path": the spec's
    execution_path) and the other paths TALLY_EXECUTION_PATH can choose for it ("also")."""
    rows = []
    for adapter in sorted({*ENGINES, *ADBC_ENGINES, *dbt_adapter.DIALECTS}):
        choices = [name for name, present in (("native", adapter in ENGINES),
                                              ("adbc", adapter in ADBC_ENGINES),
                                              ("dbt-adapter", adapter in dbt_adapter.DIALECTS))
                   if present]  # fmt: skip
        chosen = engine_for(adapter)
        rows.append({"adapter": adapter, "path": chosen.execution_path,
                     "also": ", ".join(c for c in choices if c != _path_name(chosen))})
    return rows


def _path_name(spec: EngineSpec) -> str:
    """The TALLY_EXECUTION_PATH value that selects `spec` ("native" for an engine module's)."""
    if spec is ENGINES.get(spec.adapter_type):
        return "native"
    return spec.execution_path
