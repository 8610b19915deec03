"""Building rollups in a test's private warehouse through the engine's writer, as `tally
rollups build` does (tally.rollups.build)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tally.core.compiler import Compiler
from tally.core.engine import EngineSpec
from tally.core.semantic_manifest import load_manifest
from tally.rollups.build import BuildReport, build_rollups, open_writer


def build(
    engine: EngineSpec, output: dict[str, Any], target_dir: Path, **options: Any
) -> list[BuildReport]:
    """Build (or refresh) the rollups of the manifest in `target_dir`, on the warehouse of a
    profile output (DuckDB: {"path": file}; PostgreSQL: connection arguments)."""
    compiler = Compiler(load_manifest(target_dir / "semantic_manifest.json"), engine)
    writer = open_writer(engine, output, target_dir)
    try:
        return build_rollups(compiler, writer, target_dir, **options)
    finally:
        writer.close()


def build_duckdb(db: Path, target_dir: Path, **options: Any) -> list[BuildReport]:
    from tally.warehouse.duckdb import ENGINE

    return build(ENGINE, {"type": "duckdb", "path": str(db)}, target_dir, **options)


def build_postgres(
    conn: dict[str, Any], target_dir: Path, **options: Any
) -> list[BuildReport]:
    from tally.warehouse.postgres import ENGINE

    return build(ENGINE, {"type": "postgres", **conn}, target_dir, **options)
